//! Rules for text fields: one check for the handler (a `validator` custom function) and the same
//! rule as a JSON Schema pattern for the OpenAPI document, so that what the document accepts is
//! what the service accepts.
//!
//! ```
//! use microframework_http::text;
//! use validator::Validate;
//!
//! #[derive(Validate, utoipa::ToSchema, serde::Deserialize)]
//! struct NewTag {
//!     /// 1 to 50 characters on one line.
//!     #[validate(length(min = 1, max = 50), custom(function = "text::single_line"))]
//!     #[schema(min_length = 1, max_length = 50, pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$")]
//!     name: String,
//! }
//!
//! assert!(NewTag { name: "rust".into() }.validate().is_ok());
//! assert!(NewTag { name: "a\u{0}b".into() }.validate().is_err());
//! assert!(NewTag { name: "   ".into() }.validate().is_err());
//! ```

use std::borrow::Cow;

use validator::ValidationError;

/// [`single_line`] as a JSON Schema (ECMA-262) pattern: no control character (C0, DEL, C1) and
/// at least one character that is not whitespace.
pub const SINGLE_LINE_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";

/// [`multi_line`] as a JSON Schema (ECMA-262) pattern: no control character but tab, line feed
/// and carriage return.
pub const MULTI_LINE_PATTERN: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$";

fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

fn invalid(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Borrowed(message))
}

/// One line of text that is not blank: no control character (NUL, tab, line breaks, escape...,
/// which databases refuse or terminals and logs misread) and at least one character other than
/// whitespace. The empty string is left to `length(min = 1)`, which reports it in its own words;
/// together they match [`SINGLE_LINE_PATTERN`].
///
/// # Errors
///
/// `single_line` with a message for the field error.
pub fn single_line(value: &str) -> Result<(), ValidationError> {
    if value.chars().any(is_control) {
        return Err(invalid("single_line", "must be one line of text without control characters"));
    }
    if !value.is_empty() && value.chars().all(char::is_whitespace) {
        return Err(invalid("single_line", "must not be blank"));
    }
    Ok(())
}

/// Text that may span lines: no control character but tab, line feed and carriage return.
/// Matches [`MULTI_LINE_PATTERN`].
///
/// # Errors
///
/// `multi_line` with a message for the field error.
pub fn multi_line(value: &str) -> Result<(), ValidationError> {
    if value.chars().any(|c| is_control(c) && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(invalid("multi_line", "must be text without control characters other than tabs and line breaks"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_text() {
        for ok in ["a", " a ", "Ünïcödé ✓", "a\u{a0}b", "\u{3000}x", ""] {
            assert!(single_line(ok).is_ok(), "{ok:?}");
        }
        for bad in [" ", "\u{3000}\u{2028}", "a\u{0}b", "a\nb", "tab\there", "\u{85}x", "\u{7f}", "\u{1b}[31m"] {
            assert!(single_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn multi_line_text() {
        for ok in ["", "line\nline", "a\tb\r\n", "  "] {
            assert!(multi_line(ok).is_ok(), "{ok:?}");
        }
        for bad in ["\u{0}", "a\u{b}b", "\u{c}", "\u{1f}", "\u{9f}"] {
            assert!(multi_line(bad).is_err(), "{bad:?}");
        }
    }
}
