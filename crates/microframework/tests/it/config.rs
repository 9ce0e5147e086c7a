//! Configuration errors at start-up name every bad key, where it came from and what was expected.

use microframework_testing::TestApp;

use crate::common::service;

#[tokio::test]
async fn every_bad_key_is_reported_with_file_and_line() {
    let yaml = "server:\n  port: 8080\nlogging:\n  level: loud\nhttp:\n  timeout:\n    duration: forever\n  body_limit:\n    max: 12 parsecs\n";
    let err = TestApp::builder(service()).yaml(yaml).try_spawn().await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("invalid configuration (3 problems):"), "{text}");
    assert!(text.contains("`logging.level` (from ") && text.contains("config.test.yaml:4)"), "{text}");
    assert!(text.contains("`http.timeout.duration`") && text.contains("config.test.yaml:7)"), "{text}");
    assert!(text.contains("`http.body_limit.max`") && text.contains("unknown byte unit"), "{text}");
}

#[tokio::test]
async fn environment_variables_are_named_as_the_source() {
    let err = TestApp::builder(service()).var("APP_SHUTDOWN__TIMEOUT", "never").try_spawn().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`shutdown.timeout` (from environment variable APP_SHUTDOWN__TIMEOUT)"), "{text}");
}

#[tokio::test]
async fn unknown_keys_are_rejected_with_the_valid_ones_listed() {
    let err = TestApp::builder(service()).yaml("http:\n  timeuot:\n    duration: 1s\n").try_spawn().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown field `timeuot`"), "{text}");
    assert!(text.contains("timeout"), "{text}");
}

#[tokio::test]
async fn a_referenced_but_unset_variable_is_an_error() {
    let err = TestApp::builder(service())
        .yaml("auth:\n  jwt:\n    secret: ${MF_IT_SURELY_UNSET_SECRET}\n")
        .try_spawn()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`auth.jwt.secret`") && text.contains("MF_IT_SURELY_UNSET_SECRET"), "{text}");
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_start_up_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let err = TestApp::builder(service()).set("server.port", port.to_string()).try_spawn().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{text}");
}
