use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Identifier (UUID v7, time-ordered).
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Email address, unique, stored in lower case.
    pub email: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update time.
    pub updated_at: DateTime<Utc>,
}

/// Payload to create a user.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Display name, 1 to 100 characters.
    #[validate(length(min = 1, max = 100))]
    pub name: String,
    /// Email address.
    #[validate(email, length(max = 254))]
    pub email: String,
}

/// Payload to update a user; absent fields keep their value.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Display name, 1 to 100 characters.
    #[validate(length(min = 1, max = 100))]
    pub name: Option<String>,
    /// Email address.
    #[validate(email, length(max = 254))]
    pub email: Option<String>,
}
