//! HTTP handlers.

pub mod users;

// The resources and handlers added later by `microframework generate`, declared in src/generated/
// (empty until then).
#[allow(unused_imports)]
pub use crate::generated::handlers::*;
