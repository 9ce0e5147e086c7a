//! Span fields written straight to JSON text.
//!
//! tracing-subscriber's `JsonFields` builds a map of values and serialises it for every new span,
//! which is most of the per-request cost of a span in production logging. This formatter writes
//! the same `{"key":value,...}` object directly, escaping only what JSON requires.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

/// Formats span fields as a JSON object.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSpanFields;

/// Whether any byte of `s` must be escaped in a JSON string (a control character, `"` or `\`).
///
/// Eight bytes at a time: span fields are formatted for every request, and a byte-by-byte scan
/// was the largest single cost of the request span (docs/benchmarks.md, "What the profile says").
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is zero, or less than `n` (n <= 128), exactly when its high bit survives.
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let has_less = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        if has_less(w, 0x20) | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\'))) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    // Fast path: most values (ids, routes, methods) need no escaping.
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

struct Visitor<'a> {
    out: &'a mut String,
    first: bool,
}

impl Visitor<'_> {
    fn key(&mut self, field: &Field) {
        if self.first {
            // The object opens with its first field: a span without values allocates nothing.
            self.out.reserve(128);
            self.out.push('{');
        } else {
            self.out.push(',');
        }
        self.first = false;
        push_json_str(self.out, field.name());
        self.out.push(':');
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        let text = format!("{value:?}");
        push_json_str(self.out, &text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            self.out.push_str("null");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }
}

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    /// `{"key":value,...}`, or nothing at all when no field has a value.
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut out = String::new();
        fields.record(&mut Visitor { out: &mut out, first: true });
        if out.is_empty() {
            return Ok(());
        }
        out.push('}');
        writer.write_str(&out)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let text = &mut current.fields;
        let first = !(text.len() > 2 && text.ends_with('}'));
        if first {
            text.clear();
        } else {
            text.pop();
        }
        fields.record(&mut Visitor { out: text, first });
        if !text.is_empty() {
            text.push('}');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_byte_that_needs_escaping_at_every_position() {
        for len in 0..20 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[pos] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&bytes), expected, "byte {b:#04x} at {pos} of {len}");
                }
            }
        }
        assert!(!needs_escape("é ü /users/{id} 0123456789abcdef-~\x7f".as_bytes()));
    }

    #[test]
    fn span_fields_are_one_json_object_and_nothing_without_values() {
        use tracing_subscriber::layer::SubscriberExt;

        let (writer, lines) = crate::test_support::capture();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonSpanFields)
                .event_format(crate::logging::FlatJson)
                .with_writer(writer),
        );
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", a = "x\"y", n = 3, later = tracing::field::Empty);
            let _o = outer.enter();
            let empty = tracing::info_span!("empty", later = tracing::field::Empty);
            let _e = empty.enter();
            tracing::info!("one");
            empty.record("later", true);
            outer.record("later", "set");
            tracing::info!("two");
        });
        let lines = crate::test_support::json_lines(&lines);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["a"], "x\"y");
        assert_eq!(lines[0]["n"], 3);
        assert!(lines[0].get("later").is_none(), "{}", lines[0]);
        // The innermost span's value wins, as with any flattened field.
        assert_eq!(lines[1]["later"], true);
        assert_eq!(lines[1]["a"], "x\"y");
    }

    #[test]
    fn escapes_like_json() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
