//! Queries and mutations over HTTP (POST and GET).

use serde_json::json;

use crate::common::{enc, first_code, post, query, spawn};

#[tokio::test]
async fn queries_and_mutations_over_post() {
    let (app, _lib) = spawn("").await;
    let body = query(&app, "{ books { id title author { name } } }").await;
    assert_eq!(body["data"]["books"].as_array().unwrap().len(), 10, "{body}");
    assert_eq!(body["data"]["books"][2]["author"]["name"], "Author 3");
    assert!(body.get("errors").is_none());

    let (status, body) = post(
        &app,
        json!({
            "query": "mutation Add($title: String!, $author: Int!) { addBook(title: $title, authorId: $author) { id title author { id } } }",
            "variables": { "title": "Dune", "author": 4 },
            "operationName": "Add",
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["addBook"], json!({ "id": 11, "title": "Dune", "author": { "id": 4 } }));

    let body = query(&app, "{ book(id: 11) { title } }").await;
    assert_eq!(body["data"]["book"]["title"], "Dune");
}

#[tokio::test]
async fn queries_over_get_but_never_mutations() {
    let (app, lib) = spawn("").await;
    let url = format!(
        "/graphql?query={}&variables={}",
        enc("query One($id: Int!) { book(id: $id) { title } }"),
        enc(r#"{"id": 2}"#)
    );
    let res = app.get(&url).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"]["book"]["title"], "Book 2");

    let res = app
        .get(&format!("/graphql?query={}", enc(r#"mutation { addBook(title: "Sneaky", authorId: 1) { id } }"#)))
        .await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(first_code(&body), "METHOD_NOT_ALLOWED");
    let body = query(&app, "{ books { id } }").await;
    assert_eq!(body["data"]["books"].as_array().unwrap().len(), 10, "the mutation did not run");
    drop(lib);
}

#[tokio::test]
async fn the_graphql_response_media_type_is_negotiated() {
    let (app, _lib) = spawn("").await;
    let send = |accept: &'static str, q: &'static str| {
        app.client().post(app.url("/graphql")).header("accept", accept).json(&json!({ "query": q })).send()
    };
    let res = send("application/graphql-response+json", "{ books { id } }").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/graphql-response+json");
    // A request that cannot be executed is a 400 with the GraphQL-over-HTTP media type...
    let res = send("application/graphql-response+json", "{ nope }").await.unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(first_code(&body), "GRAPHQL_VALIDATION_FAILED");
    // ...and a 200 with application/json, as older clients expect.
    let res = send("application/json", "{ nope }").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
}
