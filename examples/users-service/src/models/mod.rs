//! Domain models and request payloads.

mod user;

pub use user::{NewUser, UpdateUser, User};
