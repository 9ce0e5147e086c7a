use chrono::{DateTime, Utc};
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

/// Payload to create a user.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique name, 1 to 100 characters.
    #[validate(length(min = 1, max = 100))]
    pub name: String,
    /// Free text, up to 1000 characters.
    #[validate(length(max = 1000))]
    pub description: Option<String>,
}

/// Payload to update a user; absent fields keep their value.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Unique name, 1 to 100 characters.
    #[validate(length(min = 1, max = 100))]
    pub name: Option<String>,
    /// Free text, up to 1000 characters.
    #[validate(length(max = 1000))]
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
    fn unknown_fields_are_refused() {
        let parsed: Result<NewUser, _> = serde_json::from_str(r#"{"name": "a", "admin": true}"#);
        assert!(parsed.is_err());
    }
}
