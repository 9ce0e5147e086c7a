//! Hot reload of the configuration file: valid changes apply, invalid ones are rejected.

use std::time::Duration;

use microframework_testing::TestApp;

use crate::common::{eventually, service};

#[tokio::test]
async fn feature_flags_and_rate_limits_follow_the_file_and_bad_edits_are_rejected() {
    let app = TestApp::builder(service()).yaml("features:\n  beta: false\n").spawn().await;
    let file = app.config_dir().join("config.test.yaml");
    assert_eq!(app.get("/flag").await.text().await.unwrap(), "false");

    std::fs::write(&file, "features:\n  beta: true\nhttp:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 1, burst: 2 }\n").unwrap();
    eventually("the flag to turn on", || async { app.get("/flag").await.text().await.unwrap() == "true" }).await;
    eventually("the rate limit to apply", || async { app.get("/hello").await.status() == 429 }).await;

    // An invalid edit is rejected as a whole: the flag stays on and the limit stays.
    std::fs::write(&file, "features:\n  beta: false\nhttp:\n  rate_limit:\n    enabled: true\n    per_ip: { requests_per_second: 0, burst: 2 }\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get("/flag").await.text().await.unwrap(), "true");
    assert_eq!(app.context().config().current().get::<u32>("http.rate_limit.per_ip.requests_per_second"), Some(1));

    // Unparsable YAML is rejected too.
    std::fs::write(&file, "features: [oops\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get("/flag").await.text().await.unwrap(), "true");

    // A later valid edit applies: limits off again.
    std::fs::write(&file, "features:\n  beta: false\n").unwrap();
    eventually("the flag to turn off", || async { app.get("/flag").await.text().await.unwrap() == "false" }).await;
    eventually("the rate limit to lift", || async { app.get("/hello").await.status() == 200 }).await;
}
