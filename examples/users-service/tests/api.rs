//! The users API, in-process over real HTTP, with the service's own configuration.

use microframework::auth::JwtSigner;
use microframework_testing::TestApp;
use serde_json::{Value, json};

const SECRET: &str = "users-service-test-secret-0123456789abcdef";

async fn app() -> TestApp {
    TestApp::builder(users_service::service()).config_dir("configs").var("JWT_SECRET", SECRET).spawn().await
}

fn token(roles: &[&str]) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 300;
    JwtSigner::hs256(SECRET.as_bytes())
        .sign(&json!({"sub": "tester", "iss": "users-service", "exp": exp, "roles": roles}))
        .unwrap()
}

#[tokio::test]
async fn crud_round_trip() {
    let app = app().await;
    let res = app.post_json("/users", &json!({"name": " Ada Lovelace ", "email": "ADA@Example.com"})).await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let ada: Value = res.json().await.unwrap();
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(location, format!("/users/{}", ada["id"].as_str().unwrap()));

    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, ada);

    let res = app.put_json(&location, &json!({"name": "Countess"})).await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["name"], "Countess");
    assert_eq!(updated["email"], "ada@example.com");
    assert_ne!(updated["updated_at"], ada["updated_at"]);

    let res = app.client().delete(app.url(&location)).bearer_auth(token(&["admin"])).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&location).await.status(), 404);
}

#[tokio::test]
async fn list_is_paginated() {
    let app = app().await;
    for i in 0..5 {
        let res =
            app.post_json("/users", &json!({"name": format!("user {i}"), "email": format!("u{i}@example.com")})).await;
        assert_eq!(res.status(), 201);
    }
    let page: Value = app.get("/users?page=2&per_page=2").await.json().await.unwrap();
    assert_eq!(page["total"], 5);
    assert_eq!(page["page"], 2);
    let names: Vec<&str> = page["items"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["user 2", "user 3"]);
    let res = app.get("/users?per_page=1000").await;
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "per_page");
}

#[tokio::test]
async fn errors_are_problems() {
    let app = app().await;
    let body = json!({"name": "Grace", "email": "grace@example.com"});
    assert_eq!(app.post_json("/users", &body).await.status(), 201);
    let res = app.post_json("/users", &json!({"name": "Other", "email": "GRACE@example.com"})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let res = app.post_json("/users", &json!({"name": "", "email": "nope"})).await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);

    let res = app.post_json("/users", &json!({"name": "X", "email": "x@example.com", "admin": true})).await;
    assert_eq!(res.status(), 422, "unknown fields are refused");

    assert_eq!(app.get("/users/not-a-uuid").await.status(), 400);
    assert_eq!(app.get(&format!("/users/{}", uuid::Uuid::nil())).await.status(), 404);
    assert_eq!(app.put_json(&format!("/users/{}", uuid::Uuid::nil()), &json!({"name": "n"})).await.status(), 404);
}

#[tokio::test]
async fn deleting_requires_an_admin_token() {
    let app = app().await;
    let user: Value =
        app.post_json("/users", &json!({"name": "Linus", "email": "linus@example.com"})).await.json().await.unwrap();
    let path = format!("/users/{}", user["id"].as_str().unwrap());
    assert_eq!(app.delete(&path).await.status(), 401);
    let res = app.client().delete(app.url(&path)).bearer_auth(token(&["user"])).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let wrong_issuer = JwtSigner::hs256(SECRET.as_bytes())
        .sign(&json!({"sub": "x", "iss": "someone-else", "exp": 4_000_000_000u64, "roles": ["admin"]}))
        .unwrap();
    let res = app.client().delete(app.url(&path)).bearer_auth(wrong_issuer).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.get(&path).await.status(), 200, "nothing was deleted");
}

#[tokio::test]
async fn hello_routes_and_openapi() {
    let app = app().await;
    assert_eq!(app.get("/hello").await.text().await.unwrap(), "Hello, world!");
    let greeting: Value = app.get("/hello/json").await.json().await.unwrap();
    assert_eq!(greeting["message"], "Hello, world!");
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "users-service");
    for path in ["/users", "/users/{id}", "/hello", "/hello/json"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["paths"]["/users/{id}"]["delete"]["security"].is_array());
}
