//! Validation of configuration sections and the error that lists every problem.

use std::fmt;

/// Semantic checks of a configuration section, beyond what its types enforce.
///
/// Record every problem with [`Validation::check`] or [`Validation::error`]; do not stop at the
/// first. Keys are relative to the section.
///
/// ```
/// use microframework_core::{Validate, Validation};
/// #[derive(serde::Deserialize, Default)]
/// #[serde(default)]
/// struct Pool { max: u32, min: u32 }
/// impl Validate for Pool {
///     fn validate(&self, v: &mut Validation) {
///         v.check(self.max > 0, "max", "a number greater than 0");
///         v.check(self.min <= self.max, "min", "a number not above `max`");
///     }
/// }
/// ```
pub trait Validate {
    /// Records problems into `v`. The default accepts everything.
    fn validate(&self, v: &mut Validation) {
        let _ = v;
    }
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, v: &mut Validation) {
        if let Some(inner) = self {
            inner.validate(v);
        }
    }
}

/// Collects validation problems of one section.
#[derive(Debug)]
pub struct Validation {
    prefix: String,
    problems: Vec<(String, String)>,
}

impl Validation {
    /// A collector for the section at `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned(), problems: Vec::new() }
    }

    fn full(&self, key: &str) -> String {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{key}", self.prefix),
        }
    }

    /// Records a problem at `key` unless `ok`; `expected` says what a valid value looks like.
    pub fn check(&mut self, ok: bool, key: &str, expected: impl Into<String>) {
        if !ok {
            self.error(key, expected);
        }
    }

    /// Records a problem at `key`.
    pub fn error(&mut self, key: &str, expected: impl Into<String>) {
        let full = self.full(key);
        self.problems.push((full, expected.into()));
    }

    /// Validates a nested value under `key`.
    pub fn nested<T: Validate + ?Sized>(&mut self, key: &str, value: &T) {
        let mut inner = Validation::new(&self.full(key));
        value.validate(&mut inner);
        self.problems.append(&mut inner.problems);
    }

    /// Whether no problem has been recorded.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The recorded `(full key, expectation)` pairs.
    pub fn into_problems(self) -> Vec<(String, String)> {
        self.problems
    }
}

/// One configuration problem: which key, where its value came from, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key, such as `server.port`.
    pub key: String,
    /// Where the value came from (`configs/config.yaml:4`, `environment variable APP_SERVER__PORT`, `default`).
    pub source: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigProblem {
    /// A new problem.
    pub fn new(key: impl Into<String>, source: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), source: source.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (from {}): {}", self.key, self.source, self.message)
    }
}

/// Invalid configuration: every problem found, each naming key, source and expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// An error from a list of problems.
    pub fn new(problems: Vec<ConfigProblem>) -> Self {
        Self { problems }
    }

    /// The problems.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// Merges another error's problems into this one.
    pub fn extend(&mut self, other: ConfigError) {
        self.problems.extend(other.problems);
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "invalid configuration ({n} problem{}):", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
