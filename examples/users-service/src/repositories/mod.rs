//! Data access.

mod user_repository;

pub use user_repository::UserRepository;

// The resources added later by `microframework generate resource`, declared in src/generated/
// (empty until then).
#[allow(unused_imports)]
pub use crate::generated::repositories::*;
