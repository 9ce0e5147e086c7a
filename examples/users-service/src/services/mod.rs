//! Business logic.

mod user_service;

pub use user_service::UserService;

// The resources added later by `microframework generate resource`, declared in src/generated/
// (empty until then).
#[allow(unused_imports)]
pub use crate::generated::services::*;
