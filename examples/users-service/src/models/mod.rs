//! Domain models and request payloads.

mod user;

pub use user::{NewUser, UpdateUser, User};

// The resources added later by `microframework generate resource`, declared in src/generated/
// (empty until then).
#[allow(unused_imports)]
pub use crate::generated::models::*;
