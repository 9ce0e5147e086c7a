//! Per-operation metrics and tracing: the [`Telemetry`] extension.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition, OperationType};
use async_graphql::{Positioned, Response, ServerError, ServerResult, ValidationResult, Variables};
use futures_util::Stream;
use futures_util::stream::BoxStream;
use tracing::Instrument;

use crate::error::codes;

/// Counter: GraphQL operations by `operation_type`, `operation_name` and `outcome`.
pub const OPERATIONS_TOTAL: &str = "graphql_operations_total";
/// Histogram: GraphQL operation duration in seconds by `operation_type` and `operation_name`
/// (for subscriptions: how long the subscription stayed open).
pub const OPERATION_DURATION: &str = "graphql_operation_duration_seconds";

/// The most distinct operation names used as label values; later names are recorded as `other`.
pub const MAX_OPERATION_NAMES: usize = 200;
/// The longest operation name used as a label value; longer names are recorded as `other`.
pub const MAX_OPERATION_NAME_LEN: usize = 64;

/// `operation_name` of operations without a name.
const ANONYMOUS: &str = "anonymous";
/// `operation_name` once [`MAX_OPERATION_NAMES`] names have been seen, or for unusable names.
const OTHER: &str = "other";
/// `operation_type` and `operation_name` of requests whose operation could not be determined.
const UNKNOWN: &str = "unknown";

/// The async-graphql extension that records per-operation metrics and opens a tracing span.
///
/// For every operation (HTTP request, or operation over WebSocket):
///
/// - `graphql_operations_total{operation_type, operation_name, outcome}`, where `outcome` is
///   `ok`, `error` (executed with errors in the response) or `rejected` (not executed: syntax
///   error, failed validation, depth or complexity limit);
/// - `graphql_operation_duration_seconds{operation_type, operation_name}`;
/// - a `graphql` span at `info` level with the `operation_type`, `operation_name` and `outcome`
///   fields around parsing, validation and execution.
///
/// `operation_type` is `query`, `mutation`, `subscription` or `unknown` (the document did not
/// parse or names no such operation). Label values stay bounded: `operation_name` is the name of
/// the executed operation when it has one of at most 64 characters of `[A-Za-z0-9_]`,
/// `anonymous` without a name, and `other` once 200 distinct names have been seen in the
/// process.
///
/// Parse and validation errors gain `extensions.code` `GRAPHQL_PARSE_FAILED` or
/// `GRAPHQL_VALIDATION_FAILED`.
///
/// [`crate::configure`] adds it; add it yourself with `SchemaBuilder::extension(Telemetry)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Telemetry;

impl ExtensionFactory for Telemetry {
    fn create(&self) -> Arc<dyn Extension> {
        describe();
        let span = tracing::info_span!(
            "graphql",
            operation_type = tracing::field::Empty,
            operation_name = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        Arc::new(TelemetryExtension { state: Arc::new(OpState::new(span)) })
    }
}

fn describe() {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    DESCRIBED.get_or_init(|| {
        metrics::describe_counter!(OPERATIONS_TOTAL, "GraphQL operations by type, name and outcome.");
        metrics::describe_histogram!(
            OPERATION_DURATION,
            metrics::Unit::Seconds,
            "GraphQL operation duration (subscriptions: time open)."
        );
    });
}

/// Maps an operation name to a bounded label value.
pub(crate) fn operation_label(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name else { return ANONYMOUS.to_owned() };
    let usable = !name.is_empty()
        && name.len() <= MAX_OPERATION_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !usable {
        return OTHER.to_owned();
    }
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if seen.contains(name) {
        return name.to_owned();
    }
    if seen.len() < MAX_OPERATION_NAMES {
        seen.insert(name.to_owned());
        return name.to_owned();
    }
    OTHER.to_owned()
}

fn type_label(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// The operation `document` runs for `operation_name`, as async-graphql selects it, with its
/// name; `None` when there is no such operation.
pub(crate) fn operation<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(Option<&'d str>, &'d Positioned<OperationDefinition>)> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some((None, op)),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(wanted)) => {
            ops.iter().find(|(name, _)| name.as_str() == wanted).map(|(name, op)| (Some(name.as_str()), op))
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.iter().next().map(|(name, op)| (Some(name.as_str()), op))
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The type and name of the operation `document` runs for `operation_name`.
pub(crate) fn selected_operation<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(OperationType, Option<&'d str>)> {
    operation(document, operation_name).map(|(name, op)| (op.node.ty, name))
}

struct Labels {
    operation_type: &'static str,
    operation_name: String,
}

struct OpInner {
    requested_name: Option<String>,
    labels: Option<Labels>,
    validated: bool,
    had_errors: bool,
    recorded: bool,
}

/// What one operation has gone through so far.
struct OpState {
    started: Instant,
    span: tracing::Span,
    inner: Mutex<OpInner>,
}

impl OpState {
    fn new(span: tracing::Span) -> Self {
        Self {
            started: Instant::now(),
            span,
            inner: Mutex::new(OpInner {
                requested_name: None,
                labels: None,
                validated: false,
                had_errors: false,
                recorded: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parsed(&self, document: &ExecutableDocument) {
        let mut inner = self.lock();
        let labels = match selected_operation(document, inner.requested_name.as_deref()) {
            Some((ty, name)) => Labels { operation_type: type_label(ty), operation_name: operation_label(name) },
            None => Labels { operation_type: UNKNOWN, operation_name: UNKNOWN.to_owned() },
        };
        self.span.record("operation_type", labels.operation_type);
        self.span.record("operation_name", labels.operation_name.as_str());
        inner.labels = Some(labels);
    }

    /// Records the metrics once.
    fn finish(&self) {
        let mut inner = self.lock();
        if inner.recorded {
            return;
        }
        inner.recorded = true;
        let outcome = match (inner.validated, inner.had_errors) {
            (false, _) => "rejected",
            (true, true) => "error",
            (true, false) => "ok",
        };
        let (operation_type, operation_name) = match &inner.labels {
            Some(l) => (l.operation_type, l.operation_name.clone()),
            None => (UNKNOWN, UNKNOWN.to_owned()),
        };
        self.span.record("outcome", outcome);
        if inner.labels.is_none() {
            self.span.record("operation_type", operation_type);
            self.span.record("operation_name", operation_name.as_str());
        }
        drop(inner);
        metrics::counter!(
            OPERATIONS_TOTAL,
            "operation_type" => operation_type,
            "operation_name" => operation_name.clone(),
            "outcome" => outcome,
        )
        .increment(1);
        metrics::histogram!(
            OPERATION_DURATION,
            "operation_type" => operation_type,
            "operation_name" => operation_name,
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}

struct TelemetryExtension {
    state: Arc<OpState>,
}

fn add_code(error: &mut ServerError, code: &str) {
    let ext = error.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for TelemetryExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).instrument(self.state.span.clone()).await;
        self.state.lock().had_errors |= !response.errors.is_empty();
        self.state.finish();
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let stream = next.run(ctx, stream);
        Box::pin(ObservedStream { inner: stream, state: self.state.clone() })
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        self.state.lock().requested_name.clone_from(&request.operation_name);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        match next.run(ctx, query, variables).await {
            Ok(document) => {
                self.state.parsed(&document);
                Ok(document)
            }
            Err(mut e) => {
                add_code(&mut e, codes::GRAPHQL_PARSE_FAILED);
                Err(e)
            }
        }
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        match next.run(ctx).await {
            Ok(result) => {
                self.state.lock().validated = true;
                Ok(result)
            }
            Err(mut errors) => {
                for e in &mut errors {
                    add_code(e, codes::GRAPHQL_VALIDATION_FAILED);
                }
                Err(errors)
            }
        }
    }
}

/// A subscription (or an operation over WebSocket): polled inside the span, recorded when the
/// stream ends or is dropped (the client completed it or went away).
struct ObservedStream<'s> {
    inner: BoxStream<'s, Response>,
    state: Arc<OpState>,
}

impl Stream for ObservedStream<'_> {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let this = &mut *self;
        let polled = this.state.span.in_scope(|| this.inner.as_mut().poll_next(cx));
        match &polled {
            Poll::Ready(Some(response)) if !response.errors.is_empty() => this.state.lock().had_errors = true,
            Poll::Ready(None) => this.state.finish(),
            _ => {}
        }
        polled
    }
}

impl Drop for ObservedStream<'_> {
    fn drop(&mut self) {
        self.state.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("GetBooks")), "GetBooks");
        assert_eq!(operation_label(Some(&"x".repeat(65))), "other");
        assert_eq!(operation_label(Some("with-dash")), "other");
        assert_eq!(operation_label(Some("")), "other");
        for i in 0..(MAX_OPERATION_NAMES + 50) {
            let _ = operation_label(Some(&format!("UnitName{i}")));
        }
        assert_eq!(operation_label(Some("NeverSeenBeforeName")), "other");
        assert_eq!(operation_label(Some("GetBooks")), "GetBooks", "names seen before keep their label");
    }

    #[test]
    fn selects_the_operation_like_async_graphql() {
        let doc = async_graphql::parser::parse_query("query A { a } mutation B { b }").unwrap();
        assert_eq!(selected_operation(&doc, Some("B")), Some((OperationType::Mutation, Some("B"))));
        assert_eq!(selected_operation(&doc, None), None);
        assert_eq!(selected_operation(&doc, Some("C")), None);
        let doc = async_graphql::parser::parse_query("{ a }").unwrap();
        assert_eq!(selected_operation(&doc, None), Some((OperationType::Query, None)));
        assert_eq!(selected_operation(&doc, Some("A")), None);
        let doc = async_graphql::parser::parse_query("subscription S { a }").unwrap();
        assert_eq!(selected_operation(&doc, None), Some((OperationType::Subscription, Some("S"))));
    }
}
