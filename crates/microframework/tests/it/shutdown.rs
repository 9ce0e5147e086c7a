//! Graceful shutdown in-process: in-flight requests finish, then the listener closes; the
//! deadline bounds the wait.

use std::time::Duration;

use microframework::Service;
use microframework::config::ConfigSources;

use crate::common::service;

async fn start(svc: Service, yaml: &str) -> (microframework::RunningService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), yaml).unwrap();
    let sources = ConfigSources::new().dir(dir.path()).env("test").env_vars(vec![]).set("server.port", "0");
    (svc.config_sources(sources).start().await.unwrap(), dir)
}

#[tokio::test]
async fn in_flight_requests_finish_before_the_service_stops() {
    let (running, _dir) = start(service(), "").await;
    let url = format!("http://{}", running.local_addr());
    let client = microframework_testing::reqwest::Client::new();
    let slow = tokio::spawn({
        let (c, u) = (client.clone(), url.clone());
        async move { c.get(format!("{u}/slow?ms=800")).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ctx = running.context().clone();
    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(client.get(format!("{url}/hello")).send().await.is_err(), "no new connections while draining");
    assert_eq!(slow.await.unwrap().unwrap(), 200, "the in-flight request completes");
    stopping.await.unwrap();
    assert_eq!(ctx.lifecycle().state(), microframework::core::ServiceState::Stopped);
}

#[tokio::test]
async fn the_drain_deadline_bounds_shutdown() {
    let (running, _dir) = start(service(), "shutdown:\n  timeout: 300ms\n").await;
    let url = format!("http://{}/slow?ms=10000", running.local_addr());
    let slow = tokio::spawn(async move { microframework_testing::reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.shutdown().await;
    // Had the shutdown waited for the 10 s request, the request would have been answered.
    assert!(slow.await.unwrap().is_err(), "the request past the deadline is cut");
}
