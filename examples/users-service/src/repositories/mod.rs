//! Data access.

mod user_repository;

pub use user_repository::UserRepository;
