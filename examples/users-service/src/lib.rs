//! Users Service: a REST service with a `/users` resource, through handlers → services →
//! repositories → models.

pub mod generated;
pub mod handlers;
pub mod middleware;
pub mod models;
pub mod repositories;
pub mod services;

use microframework::Service;
use microframework::data::Database;

use crate::repositories::UserRepository;
use crate::services::UserService;

/// The service, ready to `run()` from `main` or to start in tests.
pub fn service() -> Service {
    generated::service()
        .layer(middleware::version_header())
        .api(|ctx| {
            let db = ctx.require::<Database>()?;
            let pool = db
                .sqlite()
                .ok_or("this service is written for sqlite: set database.url to a sqlite:// URL")?
                .clone();
            let repository = UserRepository::new(pool);
            Ok(handlers::users::router(UserService::new(repository)))
        })
}
