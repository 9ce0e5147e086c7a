//! W3C trace context (`traceparent`) carried across process boundaries.
//!
//! An HTTP request that arrives with a valid `traceparent` header gets a [`TraceContext`] in its
//! span; a message published while that span (or a span inside it) is current carries the same
//! trace id with a new parent id, and the consumer's span takes it from the message. The trace id
//! appears as `trace_id` on every log line of the request and of the consumer, so one trace runs
//! from the HTTP request to the consumer. Without an incoming context a publish starts a new trace.
//!
//! The context lives in the span's extensions, which needs a subscriber built on
//! `tracing_subscriber::Registry` (the one `logging::init` installs, or a test's own); under any
//! other subscriber [`TraceContext::current`] finds nothing and publishes start new traces.

use std::fmt;

use tracing::Span;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

/// The name of the W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// A W3C trace context: trace id, parent (span) id and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

impl TraceContext {
    /// A new trace: random trace and parent ids, sampled.
    pub fn new_root() -> Self {
        let bits = uuid::Uuid::new_v4().as_u128();
        let parent = uuid::Uuid::new_v4().as_u128() as u64;
        Self { trace_id: bits.max(1), parent_id: parent.max(1), flags: 1 }
    }

    /// The same trace with a new random parent id: the context a publish sends on.
    pub fn child(&self) -> Self {
        let parent = uuid::Uuid::new_v4().as_u128() as u64;
        Self { parent_id: parent.max(1), ..*self }
    }

    /// Parses a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`, lower case); `None` for
    /// anything else, including the all-zero ids the specification forbids.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        // version 00 has exactly 55 characters; later versions may append fields after a '-'.
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        let field = |range: std::ops::Range<usize>| {
            let s = value.get(range)?;
            s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)).then_some(s)
        };
        let version = field(0..2)?;
        if version == "ff" || (version == "00" && bytes.len() != 55) {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = u128::from_str_radix(field(3..35)?, 16).ok()?;
        let parent_id = u64::from_str_radix(field(36..52)?, 16).ok()?;
        let flags = u8::from_str_radix(field(53..55)?, 16).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self { trace_id, parent_id, flags })
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The `traceparent` value.
    pub fn header_value(&self) -> String {
        self.to_string()
    }

    /// Puts this context into `span` (which should declare a `trace_id` field: it is recorded
    /// there), so that [`TraceContext::current`] finds it inside the span.
    pub fn attach_to(self, span: &Span) {
        span.record("trace_id", self.trace_id().as_str());
        span.with_subscriber(|(id, dispatch)| {
            if let Some(data) = dispatch.downcast_ref::<Registry>().and_then(|registry| registry.span(id)) {
                data.extensions_mut().replace(self);
            }
        });
    }

    /// The context of the current span or the nearest span around it that has one.
    pub fn current() -> Option<Self> {
        let mut found = None;
        Span::current().with_subscriber(|(id, dispatch)| {
            let Some(registry) = dispatch.downcast_ref::<Registry>() else { return };
            let Some(span) = registry.span(id) else { return };
            found = span.scope().find_map(|s| s.extensions().get::<TraceContext>().copied());
        });
        found
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_the_w3c_example() {
        let cx = TraceContext::parse(SAMPLE).unwrap();
        assert_eq!(cx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.header_value(), SAMPLE);
        let child = cx.child();
        assert_eq!(child.trace_id(), cx.trace_id());
        assert_ne!(child.header_value(), SAMPLE);
        assert!(TraceContext::parse(&child.header_value()).is_some());
        assert!(TraceContext::parse(&TraceContext::new_root().header_value()).is_some());
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        // A later version may append fields.
        assert!(TraceContext::parse(&format!("01{}-more", &SAMPLE[2..])).is_some());
    }

    #[test]
    fn the_current_context_is_found_in_an_enclosing_span() {
        let subscriber = Registry::default().with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(TraceContext::current(), None);
            let outer = tracing::info_span!("request", trace_id = tracing::field::Empty);
            let cx = TraceContext::parse(SAMPLE).unwrap();
            cx.attach_to(&outer);
            let _o = outer.enter();
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
            assert_eq!(TraceContext::current(), Some(cx));
        });
    }
}
