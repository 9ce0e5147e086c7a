//! The fields of a request's span, kept as values and written only when a line is logged.
//!
//! Every HTTP request gets a span whose fields (`method`, `route`, `path`, `request_id`) appear
//! on each line logged while it is handled. A span's fields are normally formatted into text
//! when the span is created, which was the largest part of the span's cost per request
//! (docs/benchmarks.md, "What the profile says"), although most requests log nothing. With the
//! JSON logger ([`FlatJson`](crate::logging::FlatJson)) the request span declares these fields
//! empty and carries a [`RequestFields`] value in its extensions instead: a few reference
//! counts, no formatting, and the JSON formatter writes them into each line as if they were
//! fields. With any other subscriber (the pretty logger of `dev`, a test's own subscriber)
//! [`defer_request_fields`] declines and the fields are recorded on the span as usual.

use std::sync::Arc;

use http::{HeaderValue, Uri};
use tracing::Span;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

use crate::logging::FlatJson;

/// The request's fields, as the request span's `method`, `route`, `path` and `request_id`.
#[derive(Debug, Clone)]
pub struct RequestFields {
    /// The method (`GET`, ..., or `OTHER`).
    pub method: &'static str,
    /// The matched route template, or `unmatched`.
    pub route: Arc<str>,
    /// The request URI; its path is logged.
    pub uri: Uri,
    /// The request id, when request ids are on.
    pub request_id: Option<HeaderValue>,
}

impl RequestFields {
    /// Calls `f` with each field's name and text, in the span's order.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, &str)) {
        f("method", self.method);
        f("route", &self.route);
        f("path", self.uri.path());
        if let Some(id) = self.request_id.as_ref().and_then(|v| v.to_str().ok()) {
            f("request_id", id);
        }
    }
}

/// Stores `fields` in `span`'s extensions when the span's subscriber is the JSON logger that
/// [`logging::init`](crate::logging::init) installed, whose [`FlatJson`](crate::logging::FlatJson)
/// writes them into every line of the span (and returns `None`); otherwise gives them back, for
/// the caller to record as ordinary span fields.
pub fn defer_request_fields(span: &Span, fields: RequestFields) -> Option<RequestFields> {
    let mut fields = Some(fields);
    span.with_subscriber(|(id, dispatch)| {
        // Every formatter of the span's subscriber must be ours: the JSON logger installed by
        // `logging::init` (a pretty console next to a JSON file would lose the fields).
        if !crate::logging::json_only() || dispatch.downcast_ref::<FlatJson>().is_none() {
            return;
        }
        if let Some(data) = dispatch.downcast_ref::<Registry>().and_then(|registry| registry.span(id)) {
            let mut extensions = data.extensions_mut();
            if extensions.get_mut::<RequestFields>().is_none()
                && let Some(fields) = fields.take()
            {
                extensions.insert(fields);
            }
        }
    });
    fields
}
