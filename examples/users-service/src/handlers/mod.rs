//! HTTP handlers.

pub mod users;

// The resources and handlers added later by `microframework generate`, declared in src/generated/.
pub use crate::generated::handlers::*;
