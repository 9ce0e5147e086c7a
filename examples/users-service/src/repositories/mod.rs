//! Data access.

mod user_repository;

pub use user_repository::UserRepository;

// The resources added later by `microframework generate resource`, declared in src/generated/.
pub use crate::generated::repositories::*;
