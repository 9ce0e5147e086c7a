//! The `auth` section through the core configuration loader.

use microframework_auth::{AuthConfig, JwtConfig};
use microframework_core::Config;

use crate::support::*;

fn section(yaml: &str) -> Result<AuthConfig, Vec<(String, String)>> {
    let cfg = Config::from_yaml(yaml).unwrap();
    cfg.section::<AuthConfig>("auth")
        .map_err(|e| e.problems().iter().map(|p| (p.key.clone(), p.message.clone())).collect())
}

#[test]
fn missing_section_means_no_jwt() {
    let auth = section("server:\n  port: 1\n").unwrap();
    assert_eq!(auth, AuthConfig::default());
    assert!(auth.enabled_jwt().is_none());
}

#[test]
fn a_valid_section_loads() {
    let auth = section(
        "auth:\n  jwt:\n    jwks_url: https://idp.example.com/jwks\n    issuer: https://idp.example.com/\n    audience: orders\n    jwks_refresh_interval: 10m\n    required: true\n    public_paths: [\"/health/*\", \"/docs/*\"]\n",
    )
    .unwrap();
    let jwt = auth.enabled_jwt().unwrap();
    assert_eq!(jwt.audience, vec!["orders"]);
    assert_eq!(jwt.jwks_refresh_interval, std::time::Duration::from_secs(600));
    assert!(jwt.required);
    assert!(jwt.is_public("/health/ready"));
    assert!(!jwt.is_public("/orders"));
}

#[test]
fn public_key_file_path_is_accepted() {
    let yaml = format!(
        "auth:\n  jwt:\n    public_key: {}\n    algorithms: [RS256, PS256]\n    audience: api\n",
        fixture_path("rsa_public.pem")
    );
    assert!(section(&yaml).is_ok());
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let problems = section(
        "auth:\n  jwt:\n    secret: too-short\n    algorithms: [RS256, none]\n    leeway_seconds: 3600\n    jwks_timeout: 0s\n    public_paths: [health]\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "auth.jwt.secret",
            "auth.jwt.algorithms.0",
            "auth.jwt.algorithms.1",
            "auth.jwt.leeway_seconds",
            "auth.jwt.jwks_timeout",
            "auth.jwt.public_paths.0",
        ]
    );
    assert!(problems[0].1.contains("32 bytes"));
    assert!(!problems.iter().any(|(_, m)| m.contains("too-short")), "the secret leaked");
}

#[test]
fn key_source_problems() {
    let none = section("auth:\n  jwt:\n    issuer: x\n").unwrap_err();
    assert_eq!(none[0].0, "auth.jwt");
    assert!(none[0].1.contains("exactly one key source"));

    let both = section(&format!("auth:\n  jwt:\n    secret: {SECRET}\n    jwks_url: https://idp.example.com/jwks\n"))
        .unwrap_err();
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].0, "auth.jwt");

    let bad_url = section("auth:\n  jwt:\n    jwks_url: idp.example.com/jwks\n").unwrap_err();
    assert_eq!(bad_url[0].0, "auth.jwt.jwks_url");

    let disabled = section("auth:\n  jwt:\n    enabled: false\n").unwrap();
    assert!(disabled.enabled_jwt().is_none());
}

#[test]
fn algorithms_must_match_the_key() {
    let ec_with_rs = JwtConfig { algorithms: vec!["RS256".into()], ..public_key_config("ec_public.pem") };
    let mut v = microframework_core::Validation::new("auth.jwt");
    microframework_core::Validate::validate(&ec_with_rs, &mut v);
    let problems = v.into_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "auth.jwt.algorithms.0");

    let secret_with_rs = JwtConfig { algorithms: vec!["RS256".into()], ..hs_config() };
    let mut v = microframework_core::Validation::new("auth.jwt");
    microframework_core::Validate::validate(&secret_with_rs, &mut v);
    assert_eq!(v.into_problems()[0].0, "auth.jwt.algorithms.0");
}

#[test]
fn unknown_keys_are_rejected() {
    let problems = section(&format!("auth:\n  jwt:\n    secret: {SECRET}\n    audiance: x\n")).unwrap_err();
    assert!(problems[0].0.starts_with("auth.jwt"), "{problems:?}");
    assert!(problems[0].1.contains("audiance"), "{problems:?}");
}

#[test]
fn shared_keys_without_an_audience_are_refused_with_the_reason() {
    let yaml = "auth:\n  jwt:\n    jwks_url: https://idp.example.com/jwks.json\n";
    let problems = section(yaml).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let (key, message) = &problems[0];
    assert_eq!(key, "auth.jwt.audience");
    assert!(message.contains("many services") && message.contains("allow_any_audience"), "{message}");
    let opted_out = "auth:\n  jwt:\n    jwks_url: https://idp.example.com/jwks.json\n    allow_any_audience: true\n";
    assert!(section(opted_out).is_ok());
}
