//! The MicroFramework service generator.
//!
//! Templates are embedded in the binary (include_dir) and rendered with minijinja. Every file is
//! user-owned once written ([`Policy::Once`]); the manifest records each file's hash as generated.
//! Output is deterministic: the same options give the same bytes (Rust files are formatted with
//! rustfmt when it is installed).
//!
//! ```no_run
//! use microframework_gen::{FrameworkSource, Options, render, write_new};
//! let opts = Options::new("user-service", FrameworkSource::Version("0.1".into()));
//! let project = render(&opts)?;
//! write_new(&project, std::path::Path::new("user-service"), false)?;
//! # Ok::<(), microframework_gen::GenError>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod docker;
mod error;
mod format;
mod manifest;
mod options;
mod render;
mod write;

pub use error::GenError;
pub use manifest::{MANIFEST_FILE, Manifest};
pub use options::{AuthKind, DatabaseKind, FrameworkSource, NAME_RULES, Options, ServiceType, singular, validate_name};
pub use render::{File, Policy, Project, render};
pub use write::{WriteReport, write_new};

/// The generator version recorded in every generated service.
pub const GENERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Cargo features of the framework a generated service can switch on, with what they add.
pub const FEATURES: &[(&str, &str)] = &[
    ("database", "SQL database: --with-database=sqlite|postgres|mysql|none (pools, migrations, readiness)"),
    ("auth", "authentication: --with-auth=jwt|none (JWT bearer tokens, HS/RS/ES, JWKS)"),
];
