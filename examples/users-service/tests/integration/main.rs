//! Integration tests: the service in-process over real HTTP, on a temporary SQLite file.

use microframework::auth::JwtSigner;
use microframework_testing::TestApp;
use microframework_testing::reqwest::{Method, Response};
use serde_json::{Value, json};

const SECRET: &str = "integration-test-secret-0123456789abcdef";

fn token(secret: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    JwtSigner::hs256(secret.as_bytes())
        .sign(&json!({"sub": "tester", "iss": "users-service", "exp": exp}))
        .unwrap()
}

struct Running {
    app: TestApp,
}

async fn start() -> Option<Running> {
    let app = TestApp::builder(users_service::service())
        .config_dir("configs")
        .var("JWT_SECRET", SECRET)
        .spawn()
        .await;
    Some(Running { app })
}

impl Running {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self.app.client().request(method, self.app.url(path));
        request = request.bearer_auth(token(SECRET));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn stop(self) {
        self.app.shutdown().await;
    }
}

#[tokio::test]
async fn crud_round_trip() {
    let Some(t) = start().await else { return };
    let res = t
        .send(
            Method::POST,
            "/users",
            Some(json!({"name": " First ", "description": "one"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["name"], "First");
    assert_eq!(
        location,
        format!("/users/{}", created["id"].as_str().unwrap())
    );

    let fetched: Value = t.app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, created);

    let res = t
        .send(Method::PUT, &location, Some(json!({"name": "Renamed"})))
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["description"], "one");

    assert_eq!(t.send(Method::DELETE, &location, None).await.status(), 204);
    assert_eq!(t.app.get(&location).await.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn list_is_paginated() {
    let Some(t) = start().await else { return };
    for i in 0..5 {
        let res = t
            .send(
                Method::POST,
                "/users",
                Some(json!({"name": format!("item {i}")})),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let page: Value = t
        .app
        .get("/users?page=2&per_page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 5);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["item 2", "item 3"]);
    assert_eq!(t.app.get("/users?per_page=1000").await.status(), 400);
    t.stop().await;
}

#[tokio::test]
async fn errors_are_problem_details() {
    let Some(t) = start().await else { return };
    let body = json!({"name": "unique"});
    assert_eq!(
        t.send(Method::POST, "/users", Some(body.clone()))
            .await
            .status(),
        201
    );
    let res = t.send(Method::POST, "/users", Some(body)).await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let res = t
        .send(Method::POST, "/users", Some(json!({"name": ""})))
        .await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "name");

    let res = t
        .send(
            Method::POST,
            "/users",
            Some(json!({"name": "x", "extra": 1})),
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(t.app.get("/users/not-a-uuid").await.status(), 400);
    let missing = "/users/00000000-0000-0000-0000-000000000000";
    assert_eq!(t.app.get(missing).await.status(), 404);
    assert_eq!(t.send(Method::DELETE, missing, None).await.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn writes_need_a_valid_token() {
    let Some(t) = start().await else { return };
    let url = t.app.url("/users");
    let res = t
        .app
        .client()
        .post(&url)
        .json(&json!({"name": "anon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let forged = token("not-the-secret-but-long-enough-0123456789");
    let res = t
        .app
        .client()
        .post(&url)
        .bearer_auth(forged)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(t.app.get("/users").await.status(), 200, "reads stay public");
    t.stop().await;
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let Some(t) = start().await else { return };
    let ready: Value = t.app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "up");
    let checks: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(checks.contains(&"database"), "{ready}");
    t.app.get("/users").await;
    let metrics = t.app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"route="/users""#), "{metrics}");
    let doc: Value = t.app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["paths"]["/users/{id}"]["put"].is_object());
    let res = t.app.get("/users").await;
    assert_eq!(
        res.headers()["x-service-version"],
        env!("CARGO_PKG_VERSION")
    );
    t.stop().await;
}
