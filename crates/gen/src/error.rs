use std::path::PathBuf;

use crate::options::{NAME_RULES, ServiceType};

/// Why generation failed. Messages say what is allowed or what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// The service name breaks the rules.
    #[error("invalid service name `{name}`: {why}. A name has {NAME_RULES}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The resource name breaks the rules.
    #[error(
        "invalid resource name `{0}`: use a plural of lowercase letters, digits and `_` (2 to 40 characters, starting with a letter), such as `users` or `blog_posts`"
    )]
    InvalidResource(String),
    /// No such service type.
    #[error("unknown service type `{}`; valid types: {}", .0, ServiceType::ALL.map(|t| t.as_str()).join(", "))]
    UnknownType(String),
    /// The type exists but this version cannot generate it yet.
    #[error("the `{}` service type is not available in this version yet; available: {}", .0, ServiceType::available().iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))]
    TypeNotAvailable(ServiceType),
    /// `--framework-path` is not usable.
    #[error("invalid --framework-path: {0}")]
    InvalidFrameworkPath(String),
    /// The target exists and is not empty.
    #[error("`{}` already exists and is not empty; choose another directory or pass --force to overwrite", .0.display())]
    TargetNotEmpty(PathBuf),
    /// A template failed to render (a bug in the generator).
    #[error("template `{template}` failed to render: {message}")]
    Template {
        /// The template path.
        template: String,
        /// The renderer's message.
        message: String,
    },
    /// Writing failed.
    #[error("cannot write `{}`: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest could not be read or written.
    #[error("manifest: {0}")]
    Manifest(String),
}

impl GenError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
