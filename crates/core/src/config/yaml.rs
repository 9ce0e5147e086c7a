//! YAML parsing with `${VAR}` interpolation, and a line finder for error messages.

use std::path::Path;

use figment::Provider;
use figment::providers::{Format, Yaml};
use figment::value::{Dict, Value};

use super::validate::{ConfigError, ConfigProblem};

/// Looks up an environment variable for `${VAR}` expansion.
pub(super) type EnvLookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Parses YAML text into a dictionary and expands `${VAR}` / `${VAR:-default}` in strings.
pub(super) fn parse(path: &Path, text: &str, env: &EnvLookup<'_>) -> Result<Dict, ConfigError> {
    let file = path.display().to_string();
    if text.trim().is_empty() {
        return Ok(Dict::new());
    }
    let data = Yaml::string(text).data().map_err(|e| {
        ConfigError::new(vec![ConfigProblem::new("", file.clone(), format!("not valid YAML: {}", e.kind))])
    })?;
    let mut dict = data.into_values().next().unwrap_or_default();
    let mut problems = Vec::new();
    let mut path_stack = Vec::new();
    interpolate_dict(&mut dict, &mut path_stack, text, &file, env, &mut problems);
    if problems.is_empty() { Ok(dict) } else { Err(ConfigError::new(problems)) }
}

fn interpolate_dict(
    dict: &mut Dict,
    path: &mut Vec<String>,
    text: &str,
    file: &str,
    env: &EnvLookup<'_>,
    problems: &mut Vec<ConfigProblem>,
) {
    for (k, v) in dict.iter_mut() {
        path.push(k.clone());
        interpolate_value(v, path, text, file, env, problems);
        path.pop();
    }
}

fn interpolate_value(
    v: &mut Value,
    path: &mut Vec<String>,
    text: &str,
    file: &str,
    env: &EnvLookup<'_>,
    problems: &mut Vec<ConfigProblem>,
) {
    match v {
        Value::String(tag, s) if s.contains("${") => match expand(s, env) {
            Ok(expanded) => {
                // An expanded value is re-read like an environment variable, so `${PORT}` can fill a number.
                let mut parsed: Value = expanded.parse().unwrap_or_else(|_| Value::from(expanded.clone()));
                if !matches!(parsed, Value::String(..) | Value::Num(..) | Value::Bool(..)) {
                    parsed = Value::from(expanded);
                }
                let _ = tag;
                *v = parsed;
            }
            Err(var) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let source = match line_of(text, &refs) {
                    Some(line) => format!("{file}:{line}"),
                    None => file.to_owned(),
                };
                problems.push(ConfigProblem::new(
                    path.join("."),
                    source,
                    format!("environment variable `{var}` is not set (referenced as ${{{var}}}); set it or give a default with ${{{var}:-value}}"),
                ));
            }
        },
        Value::Dict(_, d) => interpolate_dict(d, path, text, file, env, problems),
        Value::Array(_, items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                interpolate_value(item, path, text, file, env, problems);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Expands `${NAME}` and `${NAME:-default}`; `$${` escapes a literal `${`.
/// Returns the name of the first unset variable that has no default.
pub(super) fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[pos..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (inner.trim(), None),
        };
        match lookup(name).filter(|v| !v.is_empty()).or_else(|| default.map(str::to_owned)) {
            Some(val) => out.push_str(&val),
            None => return Err(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The 1-based line of the mapping key at `path` in block-style YAML, if it can be found.
pub(super) fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some(colon) = key_end(trimmed) else { continue };
        let key = trimmed[..colon].trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        if stack.len() == path.len() && stack.iter().zip(path).all(|((_, k), p)| k == p) {
            return Some(idx + 1);
        }
    }
    None
}

fn key_end(line: &str) -> Option<usize> {
    if line.starts_with('-') {
        return None;
    }
    let bytes = line.as_bytes();
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), c) if c == q => quote = None,
            (None, b':') if bytes.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') => return Some(i),
            (None, b'#') => return None,
            _ => {}
        }
    }
    None
}
