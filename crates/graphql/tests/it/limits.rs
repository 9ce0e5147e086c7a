//! Depth and complexity limits: GraphQL errors, never 500s.

use serde_json::json;

use crate::common::{first_code, post, query, spawn};

/// `{ books { author { books { ... { id } } } } }` with `levels` fields above `id`: depth
/// `levels + 1`.
fn chain(levels: usize) -> String {
    let mut q = String::from("id");
    for i in (0..levels).rev() {
        let field = if i % 2 == 0 { "books" } else { "author" };
        q = format!("{field} {{ {q} }}");
    }
    format!("{{ {q} }}")
}

#[tokio::test]
async fn over_deep_queries_are_rejected() {
    let (app, lib) = spawn("").await; // max_depth 10 by default
    // Depth 10 passes.
    let ok = chain(9);
    let body = query(&app, &ok).await;
    assert!(body.get("errors").is_none(), "{ok}: {body}");

    let body = query(&app, &chain(10)).await;
    assert_eq!(body["errors"][0]["message"], "Query is nested too deep.", "{body}");
    assert_eq!(first_code(&body), "GRAPHQL_VALIDATION_FAILED");
    assert!(body["data"].is_null());

    let (app2, _lib2) = spawn("graphql:\n  max_depth: 3\n").await;
    let body = query(&app2, "{ books { author { books { id } } } }").await;
    assert_eq!(body["errors"][0]["message"], "Query is nested too deep.", "{body}");
    let body = query(&app2, "{ books { author { id } } }").await;
    assert!(body.get("errors").is_none(), "{body}");

    // Absurd nesting (thousands of levels) is refused without harm to the process.
    let absurd = format!("{}{}", "{ books { author ".repeat(2_000), "}".repeat(4_000));
    let (status, body) = post(&app, json!({ "query": absurd })).await;
    assert_eq!(status, 200);
    assert!(body["errors"].is_array(), "{body}");
    let absurd_list = format!("{{ book(id: {}1{}) {{ id }} }}", "[".repeat(50_000), "]".repeat(50_000));
    let (status, body) = post(&app, json!({ "query": absurd_list })).await;
    assert_eq!(status, 200);
    assert!(body["errors"].is_array(), "{body}");

    let body = query(&app, "{ books { id } }").await;
    assert_eq!(body["data"]["books"].as_array().unwrap().len(), 10, "still serving");
    drop(lib);
}

#[tokio::test]
async fn over_complex_queries_are_rejected() {
    let (app, _lib) = spawn("").await; // max_complexity 256 by default
    let fields: String = (0..150).map(|i| format!("b{i}: books {{ id }} ")).collect();
    let body = query(&app, &format!("{{ {fields} }}")).await;
    assert_eq!(body["errors"][0]["message"], "Query is too complex.", "{body}");
    assert_eq!(first_code(&body), "GRAPHQL_VALIDATION_FAILED");

    let fields: String = (0..100).map(|i| format!("b{i}: books {{ id }} ")).collect();
    let body = query(&app, &format!("{{ {fields} }}")).await;
    assert!(body.get("errors").is_none(), "200 fields are within the limit");

    let (app, _lib) = spawn("graphql:\n  max_complexity: 5\n").await;
    let body = query(&app, "{ books { id title author { id name } } }").await;
    assert_eq!(body["errors"][0]["message"], "Query is too complex.", "{body}");
}

/// GraphiQL's introspection query (graphql-js `getIntrospectionQuery`, nine nested `ofType`).
const INTROSPECTION: &str = r"
query IntrospectionQuery {
  __schema {
    description
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) {
    name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}";

#[tokio::test]
async fn tools_can_introspect_within_the_default_limits() {
    let (app, _lib) = spawn("").await;
    let body = query(&app, INTROSPECTION).await;
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Book"), "{body}");

    // The exemption covers `ofType` only: lists nested in introspection still count.
    let fan_out = "{ __schema { types { fields { type { fields { type { fields { type { fields { type { fields { name } } } } } } } } } } } }";
    let body = query(&app, fan_out).await;
    assert_eq!(body["errors"][0]["message"], "Query is nested too deep.", "{body}");
    // Mixing introspection with ordinary fields gets no exemption.
    let mixed = INTROSPECTION.replacen("query IntrospectionQuery {", "query IntrospectionQuery { books { id }", 1);
    let body = query(&app, &mixed).await;
    assert_eq!(body["errors"][0]["message"], "Query is nested too deep.", "{body}");
}
