//! Error codes, and bad requests that must never be 500s nor stop the service.

use serde_json::{Value, json};

use crate::common::{first_code, query, spawn};

#[tokio::test]
async fn business_errors_carry_stable_codes() {
    let (app, _lib) = spawn("").await;
    let body = query(&app, "{ book(id: 999) { title } }").await;
    assert_eq!(first_code(&body), "NOT_FOUND");
    assert_eq!(body["errors"][0]["message"], "No book 999.");
    assert_eq!(body["errors"][0]["path"], json!(["book"]));

    let body = query(&app, r#"mutation { addBook(title: " ", authorId: 1) { id } }"#).await;
    assert_eq!(first_code(&body), "BAD_USER_INPUT");
    assert_eq!(
        body["errors"][0]["extensions"]["fields"],
        json!([{ "field": "title", "message": "must not be empty" }])
    );

    let body = query(&app, "{ broken }").await;
    assert_eq!(first_code(&body), "INTERNAL_SERVER_ERROR");
    assert_eq!(body["errors"][0]["message"], "An unexpected error occurred.");
    assert!(!body.to_string().contains("hunter2"), "the cause never reaches the client: {body}");
}

#[tokio::test]
async fn malformed_requests_get_graphql_errors_not_500s() {
    let (app, _lib) = spawn("graphql:\n  max_body: 4KiB\n").await;

    // Syntax error: a GraphQL response with GRAPHQL_PARSE_FAILED.
    let body = query(&app, "{ books { id ").await;
    assert_eq!(first_code(&body), "GRAPHQL_PARSE_FAILED", "{body}");
    assert!(body["errors"][0]["locations"].is_array());

    // Unknown field: GRAPHQL_VALIDATION_FAILED.
    let body = query(&app, "{ books { isbn } }").await;
    assert_eq!(first_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("isbn"));

    // Missing query.
    let body = query(&app, "").await;
    assert!(body["errors"].is_array(), "{body}");

    let raw = |ct: Option<&'static str>, body: &'static str| {
        let mut req = app.client().post(app.url("/graphql")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let check = |status: u16, code: &str, res: (u16, Value)| {
        assert_eq!(res.0, status, "{}", res.1);
        assert_eq!(first_code(&res.1), code, "{}", res.1);
    };
    async fn parts(res: reqwest::Response) -> (u16, Value) {
        let status = res.status().as_u16();
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("application/json"), "{ct}");
        (status, res.json().await.unwrap())
    }

    // Invalid JSON, a JSON value that is not a request, a batch.
    check(400, "BAD_REQUEST", parts(raw(Some("application/json"), "{\"query\": ").await.unwrap()).await);
    check(400, "BAD_REQUEST", parts(raw(Some("application/json"), "42").await.unwrap()).await);
    check(
        400,
        "BAD_REQUEST",
        parts(raw(Some("application/json"), r#"{"query": "{ books { id } }", "variables": 3}"#).await.unwrap()).await,
    );
    check(
        400,
        "BAD_REQUEST",
        parts(raw(Some("application/json"), r#"[{"query": "{ books { id } }"}]"#).await.unwrap()).await,
    );
    // Wrong or missing content type (simple requests a browser could send cross-site).
    check(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        parts(raw(Some("text/plain"), r#"{"query": "{ books { id } }"}"#).await.unwrap()).await,
    );
    check(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        parts(raw(Some("application/x-www-form-urlencoded"), "query=%7Bbooks%7Bid%7D%7D").await.unwrap()).await,
    );
    check(415, "UNSUPPORTED_MEDIA_TYPE", parts(raw(None, r#"{"query": "{ books { id } }"}"#).await.unwrap()).await);
    // Over graphql.max_body.
    let big = format!(r#"{{"query": "{{ books {{ id }} }}", "extensions": {{"pad": "{}"}}}}"#, "x".repeat(8 * 1024));
    let res = app
        .client()
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    check(413, "PAYLOAD_TOO_LARGE", parts(res).await);
    // GET without a query, with bad variables.
    check(400, "BAD_REQUEST", parts(app.get("/graphql").await).await);
    check(400, "BAD_REQUEST", parts(app.get("/graphql?query=%7Bbooks%7Bid%7D%7D&variables=%7Bnope").await).await);
    // The query text as application/graphql is accepted.
    let res = raw(Some("application/graphql"), "{ books { id } }").await.unwrap();
    assert_eq!(res.status(), 200);

    // Other methods are refused by the router (problem details), still not a 500.
    let res = app.client().put(app.url("/graphql")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 405);

    // The service keeps serving.
    let body = query(&app, "{ books { id } }").await;
    assert_eq!(body["data"]["books"].as_array().unwrap().len(), 10);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("route=\"/graphql\"")
            && l.contains("status=\"5")),
        "no 5xx on /graphql"
    );
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let (app, _lib) = spawn("").await;
    let body = query(&app, "{ __schema { queryType { name } } }").await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");

    let (app, _lib) = spawn("graphql:\n  introspection: false\n").await;
    // async-graphql answers introspection fields with null when introspection is off.
    let body = query(&app, "{ __schema { queryType { name } } __type(name: \"Book\") { name } }").await;
    assert!(body["data"]["__schema"].is_null() && body["data"]["__type"].is_null(), "{body}");
}

#[tokio::test]
async fn chunked_bodies_are_held_to_the_http_body_limit() {
    // No graphql.max_body: the HTTP limit applies, also to a body without Content-Length, which
    // the default middleware cannot see in advance.
    let (app, _lib) = spawn("http:\n  body_limit:\n    max: 4KiB\n").await;
    let pad = "x".repeat(16 * 1024);
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok(r#"{"query": "{ books { id } }", "extensions": {"pad": ""#.to_owned()),
        Ok(pad),
        Ok(r#""}}"#.to_owned()),
    ];
    let res = app
        .client()
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(first_code(&body), "PAYLOAD_TOO_LARGE", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("4096 bytes"), "{body}");

    // A small chunked request still works.
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok(r#"{"query": "#), Ok(r#""{ books { id } }"}"#)];
    let res = app
        .client()
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["books"].as_array().unwrap().len(), 10, "{body}");
}
