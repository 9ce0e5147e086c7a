//! Business logic.

mod user_service;

pub use user_service::UserService;
