//! users-service: a REST CRUD resource (`/users`) through handlers → services → repositories →
//! models, on SQLite by default.
//!
//! The service is built here rather than in `main.rs` so that tests can start it in-process.

pub mod handlers;
pub mod models;
pub mod repositories;
pub mod services;

use microframework::Service;
use microframework::data::{Database, Migrations};

use crate::repositories::UserRepository;
use crate::services::UserService;

/// The service, ready to `run()` (or to start in tests).
pub fn service() -> Service {
    Service::new("users-service")
        .version(env!("CARGO_PKG_VERSION"))
        .database(Migrations::new().sqlite(sqlx::migrate!("migrations/sqlite")))
        .api(|ctx| {
            let db = ctx.require::<Database>()?;
            let pool =
                db.sqlite().ok_or("users-service stores users in SQLite: set database.url to a sqlite:// URL")?.clone();
            Ok(handlers::users::router(UserService::new(UserRepository::new(pool))))
        })
        .api(|_| Ok(handlers::hello::router()))
}
