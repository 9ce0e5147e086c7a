//! Layered configuration with typed, validated sections and hot reload.
//!
//! Sources, lowest to highest precedence:
//!
//! 1. built-in defaults (each section's `Default`, via `#[serde(default)]`)
//! 2. `configs/config.yaml`
//! 3. `configs/config.<env>.yaml`, where `<env>` comes from `--env` or `APP_ENV` (default `dev`)
//! 4. environment variables `APP_*`, nested keys separated by `__`
//!    (`APP_SERVER__PORT=9000` sets `server.port`)
//! 5. command-line flags (`--set server.port=9000`, and shortcuts such as `--port`)
//!
//! String values in YAML files may reference environment variables as `${NAME}` or
//! `${NAME:-default}`; a reference to an unset variable without a default is a configuration
//! error that names the key, the file and line, and the variable.
//!
//! Components read typed sections with [`Config::section`]. Every problem in a section is
//! reported at once, each with its key, where the value came from and what was expected.

mod de;
mod handle;
mod layers;
mod validate;
mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;

pub use handle::ConfigHandle;
pub use validate::{ConfigError, ConfigProblem, Validate, Validation};

use layers::Layer;

/// Where configuration comes from. Build one with [`ConfigSources::new`] and adjust it.
#[derive(Debug, Clone)]
pub struct ConfigSources {
    /// Directory holding `config.yaml` and `config.<env>.yaml` (default `configs`).
    pub dir: PathBuf,
    /// The environment name that selects `config.<env>.yaml` (default: `APP_ENV`, else `dev`).
    pub env: String,
    /// Prefix of environment variables that override keys (default `APP_`).
    pub env_prefix: String,
    /// Environment variables to read. `None` reads the process environment.
    pub env_vars: Option<Vec<(String, String)>>,
    /// `key=value` overrides from command-line flags (highest precedence).
    pub overrides: Vec<(String, String)>,
}

impl Default for ConfigSources {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigSources {
    /// Sources with the conventional defaults: `configs/`, `APP_ENV` (or `dev`), `APP_*` variables.
    pub fn new() -> Self {
        let env = std::env::var("APP_ENV").ok().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "dev".to_owned());
        let dir = std::env::var_os("APP_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("configs"));
        Self { dir, env, env_prefix: "APP_".to_owned(), env_vars: None, overrides: Vec::new() }
    }

    /// Sets the config directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// Sets the environment name.
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = env.into();
        self
    }

    /// Uses these variables instead of the process environment (useful in tests).
    pub fn env_vars(mut self, vars: Vec<(String, String)>) -> Self {
        self.env_vars = Some(vars);
        self
    }

    /// Adds a `key=value` override with flag precedence.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }
}

/// An immutable snapshot of the merged configuration.
#[derive(Clone)]
pub struct Config {
    figment: Figment,
    env: String,
    /// Highest precedence first.
    layers: Vec<Layer>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").field("env", &self.env).field("sources", &self.source_names()).finish()
    }
}

impl Config {
    /// Loads and merges every source. Unreadable or unparsable files, and references to unset
    /// environment variables, are reported together.
    pub fn load(sources: &ConfigSources) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut layers = Vec::new();
        if !valid_env_name(&sources.env) {
            problems.push(ConfigProblem::new(
                "env",
                "APP_ENV / --env",
                format!(
                    "an environment name of letters, digits, `-` or `_` (such as dev or prod), found `{}`",
                    sources.env
                ),
            ));
        }
        let vars: Vec<(String, String)> = match &sources.env_vars {
            Some(v) => v.clone(),
            None => {
                std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
            }
        };
        let lookup: HashMap<&str, &str> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for file in [sources.dir.join("config.yaml"), sources.dir.join(format!("config.{}.yaml", sources.env))] {
            match Layer::yaml_file(&file, &|name| lookup.get(name).map(|v| (*v).to_owned())) {
                Ok(Some(layer)) => layers.push(layer),
                Ok(None) => {}
                Err(mut p) => problems.append(&mut p),
            }
        }
        layers.push(Layer::env(&sources.env_prefix, vars));
        match Layer::flags(&sources.overrides) {
            Ok(layer) => layers.push(layer),
            Err(mut p) => problems.append(&mut p),
        }
        if !problems.is_empty() {
            return Err(ConfigError::new(problems));
        }
        let mut figment = Figment::new();
        for layer in &layers {
            figment = figment.merge(layer.clone());
        }
        layers.reverse();
        Ok(Self { figment, env: sources.env.clone(), layers })
    }

    /// Builds a configuration from YAML text alone (no files, no environment); handy in tests.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let layer = Layer::yaml_text(Path::new("<inline>"), text, &|name| std::env::var(name).ok())?;
        Ok(Self { figment: Figment::from(layer.clone()), env: "dev".to_owned(), layers: vec![layer] })
    }

    /// The environment name (`dev`, `prod`, ...).
    pub fn env(&self) -> &str {
        &self.env
    }

    /// Whether this is a production environment (`prod` or `production`).
    pub fn is_prod(&self) -> bool {
        matches!(self.env.as_str(), "prod" | "production")
    }

    /// Names of the sources in effect, highest precedence first.
    pub fn source_names(&self) -> Vec<String> {
        self.layers.iter().filter(|l| !l.is_empty()).map(Layer::name).collect()
    }

    /// Deserialises and validates the section at `key` (a dotted path such as `auth.jwt`).
    ///
    /// A missing section yields the type's defaults. Every problem is collected: type errors
    /// and unknown enum variants from deserialisation, then the checks of [`Validate`].
    pub fn section<T: DeserializeOwned + Validate>(&self, key: &str) -> Result<T, ConfigError> {
        let mut value = match self.figment.find_value(key) {
            Ok(v) => v,
            Err(_) => Value::from(Dict::new()),
        };
        let mut problems = Vec::new();
        // Deserialise; on a type error, record it, drop the offending key (so its default
        // applies) and try again, so that every bad key is reported in one run.
        let parsed = loop {
            match serde_path_to_error::deserialize::<_, T>(de::LenientDe(&value)) {
                Ok(v) => break Some(v),
                Err(err) => {
                    let path = path_segments(err.path());
                    let inner = err.into_inner().0;
                    let (full, message) = match missing_field(&inner) {
                        Some(field) => {
                            let mut p = path.clone();
                            p.push(field.to_owned());
                            (join_key(key, &p), "required, but not set".to_owned())
                        }
                        None => (join_key(key, &path), inner.clone()),
                    };
                    problems.push(ConfigProblem::new(&full, self.source_of(&full), message));
                    if path.is_empty()
                        || missing_field(&inner).is_some()
                        || !remove_path(&mut value, &path)
                        || problems.len() > 64
                    {
                        break None;
                    }
                }
            }
        };
        if let Some(v) = &parsed {
            let mut validation = Validation::new(key);
            v.validate(&mut validation);
            for (k, expected) in validation.into_problems() {
                let source = self.source_of(&k);
                problems.push(ConfigProblem::new(&k, source, expected));
            }
        }
        match parsed {
            Some(v) if problems.is_empty() => Ok(v),
            _ => Err(ConfigError::new(problems)),
        }
    }

    /// The raw value at `key`, deserialised without validation; `None` if absent or mistyped.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = self.figment.find_value(key).ok()?;
        T::deserialize(de::LenientDe(&value)).ok()
    }

    /// Where the value at `key` comes from: `configs/config.yaml:12`, `environment variable
    /// APP_SERVER__PORT`, `command-line flag --set server.port`, or `default`.
    pub fn source_of(&self, key: &str) -> String {
        let path: Vec<&str> = key.split('.').collect();
        for layer in &self.layers {
            if let Some(s) = layer.describe(&path) {
                return s;
            }
        }
        // A parent may have been set (for example a whole section in a file).
        for n in (1..path.len()).rev() {
            for layer in &self.layers {
                if let Some(s) = layer.describe(&path[..n]) {
                    return s;
                }
            }
        }
        "default".to_owned()
    }

    /// Every key that is set by some source, with the source that wins, sorted by key.
    pub fn explain(&self) -> Vec<(String, String)> {
        let mut keys = HashMap::new();
        for layer in self.layers.iter().rev() {
            for k in layer.leaf_keys() {
                keys.insert(k.clone(), ());
            }
        }
        let mut out: Vec<(String, String)> = keys
            .into_keys()
            .map(|k| {
                let s = self.source_of(&k);
                (k, s)
            })
            .collect();
        out.sort();
        out
    }

    /// The merged tree.
    pub fn value(&self) -> Value {
        self.figment.find_value("").unwrap_or_else(|_| Value::from(Dict::new()))
    }

    /// The files read, in precedence order (lowest first).
    pub fn files(&self) -> Vec<PathBuf> {
        self.layers.iter().rev().filter_map(Layer::file_path).collect()
    }
}

fn valid_env_name(env: &str) -> bool {
    !env.is_empty() && env.len() <= 32 && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn join_key(section: &str, path: &[String]) -> String {
    let mut out = section.to_owned();
    for p in path {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(p);
    }
    out
}

fn remove_path(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut cur = value;
    for p in parents {
        match cur {
            Value::Dict(_, d) => match d.get_mut(p) {
                Some(v) => cur = v,
                None => return false,
            },
            Value::Array(_, a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => cur = v,
                None => return false,
            },
            _ => return false,
        }
    }
    match cur {
        Value::Dict(_, d) => d.remove(last).is_some(),
        Value::Array(_, a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

#[cfg(test)]
mod tests;
