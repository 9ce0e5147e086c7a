//! The MicroFramework service generator.
//!
//! Templates are embedded in the binary (include_dir) and rendered with minijinja. A file is
//! either user-owned once written ([`Policy::Once`]) or generated ([`Policy::Generated`]: framework
//! wiring under `src/generated/`, marked `@generated`, rewritten by [`plan_update`] /
//! [`apply_update`]); the manifest records each file's policy and hash as generated.
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

mod add;
mod docker;
mod error;
mod format;
mod generate;
mod layers;
mod manifest;
mod merge;
mod options;
mod render;
mod update;
mod write;

pub use add::{AddAction, AddChange, AddPlan, apply_add, plan_add};
pub use error::GenError;
pub use generate::{GenerateKind, plan_generate};
pub use layers::{AppliedLayer, FEATURE_LAYERS, Feature, Provider, SecretVar, feature};
pub use manifest::{MANIFEST_FILE, Manifest};
pub use options::{
    AuthKind, DatabaseKind, ExtraResource, FrameworkSource, NAME_RULES, Options, ServiceType, singular, validate_name,
};
pub use render::{File, GENERATED_DIR, GENERATED_MARKER, Policy, Project, render};
pub use update::{Change, ChangeKind, UpdatePlan, apply_update, plan_update};
pub use write::{WriteReport, write_new};

/// The generator version recorded in every generated service.
pub const GENERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");
