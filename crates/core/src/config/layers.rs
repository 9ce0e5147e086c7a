//! The configuration sources as figment providers that also know where each key came from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::validate::ConfigProblem;
use super::yaml;

#[derive(Clone, Debug)]
pub(super) enum Layer {
    File { path: PathBuf, text: Arc<str>, dict: Dict },
    Env { names: Arc<HashMap<String, String>>, dict: Dict },
    Flags { dict: Dict },
}

impl Layer {
    /// Reads a YAML file; `Ok(None)` when it does not exist.
    pub(super) fn yaml_file(path: &Path, env: &yaml::EnvLookup<'_>) -> Result<Option<Self>, Vec<ConfigProblem>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::yaml_text(path, &text, env).map(Some).map_err(|e| e.problems().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(vec![ConfigProblem::new(
                "",
                path.display().to_string(),
                format!("the file could not be read: {e}"),
            )]),
        }
    }

    pub(super) fn yaml_text(path: &Path, text: &str, env: &yaml::EnvLookup<'_>) -> Result<Self, super::ConfigError> {
        let dict = yaml::parse(path, text, env)?;
        Ok(Self::File { path: path.to_owned(), text: Arc::from(text), dict })
    }

    pub(super) fn env(prefix: &str, vars: Vec<(String, String)>) -> Self {
        let mut dict = Dict::new();
        let mut names = HashMap::new();
        for (name, raw) in vars {
            let Some(rest) = name.strip_prefix(prefix) else { continue };
            // APP_ENV and APP_CONFIG_DIR select the sources; they are not keys.
            if rest.is_empty() || rest == "ENV" || rest == "CONFIG_DIR" {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.iter().any(String::is_empty) {
                continue;
            }
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            insert(&mut dict, &path, value);
            names.insert(path.join("."), name);
        }
        Self::Env { names: Arc::new(names), dict }
    }

    pub(super) fn flags(overrides: &[(String, String)]) -> Result<Self, Vec<ConfigProblem>> {
        let mut dict = Dict::new();
        let mut problems = Vec::new();
        for (key, raw) in overrides {
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            if key.is_empty() || path.iter().any(|p| p.is_empty() || p.contains(char::is_whitespace)) {
                problems.push(ConfigProblem::new(
                    key.as_str(),
                    "command-line flag --set",
                    "a dotted key such as `server.port`",
                ));
                continue;
            }
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            insert(&mut dict, &path, value);
        }
        if problems.is_empty() { Ok(Self::Flags { dict }) } else { Err(problems) }
    }

    fn dict(&self) -> &Dict {
        match self {
            Self::File { dict, .. } | Self::Env { dict, .. } | Self::Flags { dict } => dict,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.dict().is_empty()
    }

    pub(super) fn name(&self) -> String {
        match self {
            Self::File { path, .. } => path.display().to_string(),
            Self::Env { .. } => "environment variables".to_owned(),
            Self::Flags { .. } => "command-line flags".to_owned(),
        }
    }

    pub(super) fn file_path(&self) -> Option<PathBuf> {
        match self {
            Self::File { path, .. } => Some(path.clone()),
            _ => None,
        }
    }

    /// Describes this layer as the source of `path`, if it sets it.
    pub(super) fn describe(&self, path: &[&str]) -> Option<String> {
        lookup(self.dict(), path)?;
        Some(match self {
            Self::File { path: file, text, .. } => match yaml::line_of(text, path) {
                Some(line) => format!("{}:{line}", file.display()),
                None => file.display().to_string(),
            },
            Self::Env { names, .. } => match names.get(&path.join(".")) {
                Some(var) => format!("environment variable {var}"),
                None => "environment variables".to_owned(),
            },
            Self::Flags { .. } => format!("command-line flag --set {}", path.join(".")),
        })
    }

    pub(super) fn leaf_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_leaves(self.dict(), "", &mut out);
        out
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        match self {
            Self::File { path, .. } => Metadata::from("YAML file", path.as_path()),
            Self::Env { .. } => Metadata::named("environment variable"),
            Self::Flags { .. } => Metadata::named("command-line flag"),
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict().clone()))
    }
}

pub(super) fn insert(dict: &mut Dict, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        dict.insert(first.clone(), value);
        return;
    }
    let entry = dict.entry(first.clone()).or_insert_with(|| Value::from(Dict::new()));
    if !matches!(entry, Value::Dict(..)) {
        *entry = Value::from(Dict::new());
    }
    if let Value::Dict(_, inner) = entry {
        insert(inner, rest, value);
    }
}

fn lookup<'a>(dict: &'a Dict, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = dict.get(*first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Value::Dict(_, d) => lookup(d, rest),
        Value::Array(_, a) => {
            let (idx, rest2) = rest.split_first()?;
            let item = a.get(idx.parse::<usize>().ok()?)?;
            if rest2.is_empty() {
                Some(item)
            } else if let Value::Dict(_, d) = item {
                lookup(d, rest2)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn collect_leaves(dict: &Dict, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in dict {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Dict(_, d) if !d.is_empty() => collect_leaves(d, &key, out),
            _ => out.push(key),
        }
    }
}
