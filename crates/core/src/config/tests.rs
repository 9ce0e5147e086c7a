use std::fs;
use std::time::Duration;

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct Server {
    host: String,
    port: u16,
    workers: u32,
    #[serde(with = "humantime_serde")]
    timeout: Duration,
    tags: Vec<String>,
}

impl Default for Server {
    fn default() -> Self {
        Self { host: "127.0.0.1".into(), port: 8080, workers: 4, timeout: Duration::from_secs(30), tags: vec![] }
    }
}

impl Validate for Server {
    fn validate(&self, v: &mut Validation) {
        v.check(self.port != 0, "port", "a port between 1 and 65535");
        v.check(self.workers <= 512, "workers", "at most 512 workers");
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Jwt {
    secret: Option<String>,
}

impl Validate for Jwt {
    fn validate(&self, v: &mut Validation) {
        v.check(self.secret.as_deref().is_some_and(|s| s.len() >= 8), "secret", "a secret of at least 8 characters");
    }
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn sources(dir: &tempfile::TempDir, env: &str, vars: &[(&str, &str)]) -> ConfigSources {
    ConfigSources::new()
        .dir(dir.path())
        .env(env)
        .env_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

#[test]
fn defaults_apply_without_any_source() {
    let dir = dir_with(&[]);
    let cfg = Config::load(&sources(&dir, "dev", &[])).unwrap();
    assert_eq!(cfg.section::<Server>("server").unwrap(), Server::default());
    assert_eq!(cfg.source_of("server.port"), "default");
}

#[test]
fn precedence_flags_over_env_over_env_file_over_base_file_over_defaults() {
    let dir = dir_with(&[
        ("config.yaml", "server:\n  host: base\n  port: 1000\n  workers: 1\n  timeout: 5s\n"),
        ("config.prod.yaml", "server:\n  port: 2000\n  workers: 2\n"),
    ]);
    let src = sources(&dir, "prod", &[("APP_SERVER__WORKERS", "3"), ("APP_SERVER__PORT", "3000"), ("OTHER", "x")])
        .set("server.port", "4000");
    let cfg = Config::load(&src).unwrap();
    let s: Server = cfg.section("server").unwrap();
    assert_eq!((s.host.as_str(), s.port, s.workers, s.timeout), ("base", 4000, 3, Duration::from_secs(5)));
    assert_eq!(cfg.source_of("server.port"), "command-line flag --set server.port");
    assert_eq!(cfg.source_of("server.workers"), "environment variable APP_SERVER__WORKERS");
    assert!(cfg.source_of("server.host").ends_with("config.yaml:2"), "{}", cfg.source_of("server.host"));
    assert!(cfg.is_prod());
    // The dev file is not read in prod.
    let cfg = Config::load(&sources(&dir, "dev", &[])).unwrap();
    assert_eq!(cfg.section::<Server>("server").unwrap().port, 1000);
}

#[test]
fn every_problem_is_reported_with_key_source_and_expectation() {
    let dir =
        dir_with(&[("config.yaml", "server:\n  host: h\n  port: not-a-port\n  workers: 9999\n  timeout: soon\n")]);
    let cfg = Config::load(&sources(&dir, "dev", &[])).unwrap();
    let err = cfg.section::<Server>("server").unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["server.port", "server.timeout", "server.workers"], "{err}");
    let port = &err.problems()[0];
    assert!(port.source.ends_with("config.yaml:3"), "{}", port.source);
    assert!(port.message.contains("u16"), "{}", port.message);
    let text = err.to_string();
    assert!(text.starts_with("invalid configuration (3 problems):"), "{text}");
    assert!(text.contains("at most 512 workers"), "{text}");
}

#[test]
fn unknown_keys_and_bad_enum_values_are_named() {
    let dir = dir_with(&[("config.yaml", "server:\n  prot: 1\n")]);
    let cfg = Config::load(&sources(&dir, "dev", &[])).unwrap();
    let err = cfg.section::<Server>("server").unwrap_err();
    assert!(err.to_string().contains("unknown field `prot`"), "{err}");
}

#[test]
fn env_values_are_text_and_fill_any_scalar() {
    let dir = dir_with(&[]);
    let cfg = Config::load(&sources(
        &dir,
        "dev",
        &[("APP_AUTH__JWT__SECRET", "12345678"), ("APP_SERVER__TAGS", "a, b"), ("APP_SERVER__TIMEOUT", "1m")],
    ))
    .unwrap();
    assert_eq!(cfg.section::<Jwt>("auth.jwt").unwrap().secret.as_deref(), Some("12345678"));
    let s: Server = cfg.section("server").unwrap();
    assert_eq!(s.tags, ["a", "b"]);
    assert_eq!(s.timeout, Duration::from_secs(60));
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Flags {
    on: bool,
    off: bool,
}

impl Validate for Flags {}

#[test]
fn booleans_accept_one_and_zero_from_the_environment() {
    let dir = dir_with(&[]);
    let cfg = Config::load(&sources(&dir, "dev", &[("APP_F__ON", "1"), ("APP_F__OFF", "0")])).unwrap();
    let f: Flags = cfg.section("f").unwrap();
    assert!(f.on && !f.off);
    let cfg = Config::load(&sources(&dir, "dev", &[("APP_F__ON", "2")])).unwrap();
    assert!(cfg.section::<Flags>("f").is_err());
}

#[test]
fn missing_required_key_names_the_env_var_to_set() {
    let dir = dir_with(&[]);
    let cfg = Config::load(&sources(&dir, "dev", &[])).unwrap();
    let err = cfg.section::<Jwt>("auth.jwt").unwrap_err();
    assert_eq!(err.problems()[0].key, "auth.jwt.secret");
    assert_eq!(err.problems()[0].source, "default");
}

#[test]
fn yaml_interpolates_environment_variables() {
    // SAFETY-free: use names unlikely to exist and variables that we only read.
    let dir = dir_with(&[(
        "config.yaml",
        "server:\n  host: ${MF_TEST_SURELY_UNSET_HOST:-fallback}\n  port: ${MF_TEST_SURELY_UNSET_PORT}\n",
    )]);
    let err = Config::load(&sources(&dir, "dev", &[])).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key, "server.port");
    assert!(p.source.ends_with("config.yaml:3"), "{}", p.source);
    assert!(p.message.contains("MF_TEST_SURELY_UNSET_PORT"), "{}", p.message);

    let dir =
        dir_with(&[("config.yaml", "server:\n  host: ${MF_TEST_SURELY_UNSET_HOST:-fallback}\n  note: $${literal}\n")]);
    let cfg = Config::load(&sources(&dir, "dev", &[])).unwrap();
    assert_eq!(cfg.get::<String>("server.host").as_deref(), Some("fallback"));
    assert_eq!(cfg.get::<String>("server.note").as_deref(), Some("${literal}"));
}

#[test]
fn malformed_yaml_names_the_file() {
    let dir = dir_with(&[("config.yaml", "server:\n  port: [1,\n")]);
    let err = Config::load(&sources(&dir, "dev", &[])).unwrap_err();
    assert!(err.problems()[0].source.ends_with("config.yaml"), "{err}");
    assert!(err.problems()[0].message.contains("not valid YAML"), "{err}");
}

#[test]
fn bad_env_name_and_bad_flag_key_are_errors() {
    let dir = dir_with(&[]);
    let err = Config::load(&sources(&dir, "../etc", &[]).set("bad key", "1")).unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
}

#[test]
fn line_finder_follows_nesting() {
    let text = "# c\nserver:\n  host: a\n  port: 1\nauth:\n  jwt:\n    secret: x\n  port: 2\n";
    assert_eq!(yaml::line_of(text, &["server", "port"]), Some(4));
    assert_eq!(yaml::line_of(text, &["auth", "jwt", "secret"]), Some(7));
    assert_eq!(yaml::line_of(text, &["auth", "port"]), Some(8));
    assert_eq!(yaml::line_of(text, &["nope"]), None);
}

#[test]
fn expand_handles_defaults_and_escapes() {
    let look = |n: &str| (n == "A").then(|| "1".to_owned());
    assert_eq!(yaml::expand("x${A}y", look).unwrap(), "x1y");
    assert_eq!(yaml::expand("${B:-d}", look).unwrap(), "d");
    assert_eq!(yaml::expand("$${A}", look).unwrap(), "${A}");
    assert_eq!(yaml::expand("${B}", look).unwrap_err(), "B");
}

#[tokio::test]
async fn reload_applies_valid_changes_and_rejects_invalid_ones() {
    let dir = dir_with(&[("config.yaml", "server:\n  port: 1000\n")]);
    let handle = ConfigHandle::load(sources(&dir, "dev", &[])).unwrap();
    assert_eq!(handle.section::<Server>("server").unwrap().port, 1000);
    let mut rx = handle.subscribe();

    fs::write(dir.path().join("config.yaml"), "server:\n  port: 2000\n").unwrap();
    handle.reload().unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().section::<Server>("server").unwrap().port, 2000);

    fs::write(dir.path().join("config.yaml"), "server:\n  port: 0\n").unwrap();
    let err = handle.reload().unwrap_err();
    assert!(err.to_string().contains("server.port"), "{err}");
    assert!(!rx.has_changed().unwrap());
    assert_eq!(handle.current().section::<Server>("server").unwrap().port, 2000);
}

#[tokio::test]
async fn file_watcher_reloads_on_change() {
    let dir = dir_with(&[("config.yaml", "server:\n  port: 1000\n")]);
    let handle = ConfigHandle::load(sources(&dir, "dev", &[])).unwrap();
    handle.section::<Server>("server").unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    handle.watch_files(token.clone()).unwrap();
    let mut rx = handle.subscribe();
    fs::write(dir.path().join("config.yaml"), "server:\n  port: 3000\n").unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.changed()).await.expect("reload within 10s").unwrap();
    assert_eq!(handle.current().section::<Server>("server").unwrap().port, 3000);
    token.cancel();
}
