//! Per-operation metrics with bounded labels.

use std::collections::HashSet;

use microframework_graphql::telemetry::MAX_OPERATION_NAMES;
use serde_json::json;

use crate::common::{post, query, spawn};

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(&line[start..end])
}

#[tokio::test]
async fn operations_are_counted_with_bounded_labels() {
    let (app, _lib) = spawn("").await;
    query(&app, "query ListBooks { books { id } }").await;
    query(&app, "{ books { id } }").await;
    query(&app, "{ nope }").await;
    query(&app, "query Broken { broken }").await;
    query(&app, "{ books { ").await;
    post(&app, json!({ "query": format!("query {} {{ books {{ id }} }}", "L".repeat(65)) })).await;

    // 300 distinct operation names: at most MAX_OPERATION_NAMES become labels.
    for i in 0..300 {
        let (status, _) = post(&app, json!({ "query": format!("query Op{i} {{ books {{ id }} }}") })).await;
        assert_eq!(status, 200);
    }

    let text = app.get("/metrics").await.text().await.unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("graphql_operations_total{")).collect();
    let has = |ty: &str, name: &str, outcome: &str| {
        lines.iter().any(|l| {
            label(l, "operation_type") == Some(ty)
                && label(l, "operation_name") == Some(name)
                && label(l, "outcome") == Some(outcome)
        })
    };
    assert!(has("query", "ListBooks", "ok"), "{text}");
    assert!(has("query", "anonymous", "ok"));
    assert!(has("query", "anonymous", "rejected"), "failed validation");
    assert!(has("query", "Broken", "error"), "executed with errors");
    assert!(has("unknown", "unknown", "rejected"), "syntax error");
    assert!(has("query", "other", "ok"), "names past the cap, and over-long names");

    let names: HashSet<&str> = lines.iter().filter_map(|l| label(l, "operation_name")).collect();
    assert!(names.len() <= MAX_OPERATION_NAMES + 3, "{} distinct operation names", names.len());
    assert!(!names.iter().any(|n| n.len() > 64));
    let op_names = names.iter().filter(|n| n.starts_with("Op")).count();
    assert!(op_names <= MAX_OPERATION_NAMES, "{op_names} of 300 names became labels");

    assert!(text.contains("graphql_operation_duration_seconds"), "{text}");
    let durations: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("graphql_operation_duration_seconds") && l.contains("ListBooks"))
        .collect();
    assert!(!durations.is_empty(), "{text}");
    assert!(durations.iter().all(|l| label(l, "outcome").is_none()), "durations are not split by outcome");
}
