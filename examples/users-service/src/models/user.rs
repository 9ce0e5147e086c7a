use chrono::{DateTime, Utc};
use microframework::http::text;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Identifier (UUID v7, ordered by creation time).
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update time.
    pub updated_at: DateTime<Utc>,
}

// The `#[schema]` attributes declare in the OpenAPI document exactly what `#[validate]` checks:
// the patterns are `microframework::http::text::SINGLE_LINE_PATTERN` and `MULTI_LINE_PATTERN`
// (see the test below), the rules of `text::single_line` and `text::multi_line`.

/// Payload to create a user.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique name: 1 to 100 characters on one line, not blank.
    #[validate(length(min = 1, max = 100), custom(function = "text::single_line"))]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// Free text, up to 1000 characters; tabs and line breaks allowed, other control characters not.
    #[validate(length(max = 1000), custom(function = "text::multi_line"))]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub description: Option<String>,
}

/// Payload to update a user; absent fields keep their value.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Unique name: 1 to 100 characters on one line, not blank.
    #[validate(length(min = 1, max = 100), custom(function = "text::single_line"))]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
    /// Free text, up to 1000 characters; tabs and line breaks allowed, other control characters not.
    #[validate(length(max = 1000), custom(function = "text::multi_line"))]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_empty_and_long_names() {
        let ok = NewUser {
            name: "a".into(),
            description: None,
        };
        assert!(ok.validate().is_ok());
        let empty = NewUser {
            name: String::new(),
            description: None,
        };
        assert!(empty.validate().is_err());
        let long = UpdateUser {
            name: Some("x".repeat(101)),
            description: None,
        };
        assert!(long.validate().is_err());
    }

    #[test]
    fn control_characters_and_blank_names_are_refused() {
        let nul = NewUser {
            name: "a\u{0}b".into(),
            description: None,
        };
        assert!(
            nul.validate().is_err(),
            "NUL, which PostgreSQL cannot store"
        );
        let blank = NewUser {
            name: "   ".into(),
            description: None,
        };
        assert!(blank.validate().is_err());
        let lines = NewUser {
            name: "a".into(),
            description: Some("one\ntwo\tthree".into()),
        };
        assert!(lines.validate().is_ok());
        let escape = UpdateUser {
            name: None,
            description: Some("\u{1b}[2J".into()),
        };
        assert!(escape.validate().is_err());
    }

    #[test]
    fn the_openapi_schema_declares_the_validation() {
        let schema = serde_json::to_value(<NewUser as utoipa::PartialSchema>::schema()).unwrap();
        let name = &schema["properties"]["name"];
        assert_eq!(name["minLength"], 1, "{schema}");
        assert_eq!(name["maxLength"], 100);
        assert_eq!(name["pattern"], text::SINGLE_LINE_PATTERN);
        let description = &schema["properties"]["description"];
        assert_eq!(description["maxLength"], 1000, "{schema}");
        assert_eq!(description["pattern"], text::MULTI_LINE_PATTERN);
        let update = serde_json::to_value(<UpdateUser as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            update["properties"]["name"]["pattern"],
            text::SINGLE_LINE_PATTERN,
            "{update}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed: Result<NewUser, _> = serde_json::from_str(r#"{"name": "a", "admin": true}"#);
        assert!(parsed.is_err());
    }
}
