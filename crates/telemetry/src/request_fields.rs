//! The fields of a request's span, kept as values and written only when a line is logged.
//!
//! Every HTTP request gets a span whose fields (`method`, `route`, `path`, `request_id`) appear
//! on each line logged while it is handled, and so does every gRPC call (`service`, `method`,
//! `request_id`). A span's fields are normally formatted into text when the span is created,
//! which was the largest part of the span's cost per request (docs/benchmarks.md, "What the
//! profile says"), although most requests log nothing. With the JSON logger
//! ([`FlatJson`]) the span declares these fields empty and carries a
//! [`RequestFields`] value in its extensions instead: a few reference counts, no formatting, and
//! the JSON formatter writes them into each line as if they were fields. With any other
//! subscriber (the pretty logger of `dev`, a test's own subscriber) [`defer_request_fields`]
//! declines and the fields are recorded on the span as usual.

use std::sync::Arc;

use http::{HeaderValue, Uri};
use tracing::Span;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

use crate::logging::FlatJson;

/// A request's fields, as its span would carry them.
#[derive(Debug, Clone)]
pub enum RequestFields {
    /// An HTTP request: the `request` span's `method`, `route`, `path` and `request_id`.
    Http {
        /// The method (`GET`, ..., or `OTHER`).
        method: &'static str,
        /// The matched route template, or `unmatched`.
        route: Arc<str>,
        /// The request URI; its path is logged.
        uri: Uri,
        /// The request id, when request ids are on.
        request_id: Option<HeaderValue>,
    },
    /// A gRPC call: the `grpc` span's `service`, `method` and `request_id`.
    Grpc {
        /// The fully qualified service (`pkg.Service`), or `unknown`.
        service: Arc<str>,
        /// The method, or `unknown`.
        method: Arc<str>,
        /// The call's request id.
        request_id: Option<HeaderValue>,
    },
}

impl RequestFields {
    /// Calls `f` with each field's name and text, in the span's order.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, &str)) {
        let request_id = match self {
            Self::Http { method, route, uri, request_id } => {
                f("method", method);
                f("route", route);
                f("path", uri.path());
                request_id
            }
            Self::Grpc { service, method, request_id } => {
                f("service", service);
                f("method", method);
                request_id
            }
        };
        if let Some(id) = request_id.as_ref().and_then(|v| v.to_str().ok()) {
            f("request_id", id);
        }
    }

    /// Gives `span` these fields: kept as values under the JSON logger (see
    /// [`defer_request_fields`]), recorded as ordinary span fields (which the span must declare,
    /// `Empty`) under any other subscriber.
    pub fn attach_to(self, span: &Span) {
        if let Some(fields) = defer_request_fields(span, self) {
            fields.for_each(|name, value| {
                span.record(name, value);
            });
        }
    }
}

/// Stores `fields` in `span`'s extensions when the span's subscriber is the JSON logger that
/// [`logging::init`](crate::logging::init) installed, whose [`FlatJson`]
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

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::json_fields::JsonSpanFields;
    use crate::test_support::{capture, json_lines};

    /// The tests that switch the process-wide JSON-only flag run one at a time.
    static FLAG: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn http() -> RequestFields {
        RequestFields::Http {
            method: "GET",
            route: "/users/{id}".into(),
            uri: Uri::from_static("/users/7?full=1"),
            request_id: Some(HeaderValue::from_static("req-1")),
        }
    }

    fn grpc() -> RequestFields {
        RequestFields::Grpc { service: "users.v1.Users".into(), method: "Get".into(), request_id: None }
    }

    #[test]
    fn the_json_logger_writes_deferred_fields_into_every_line_of_the_span() {
        let _flag = FLAG.lock().unwrap_or_else(|p| p.into_inner());
        let (writer, captured) = capture();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer().fmt_fields(JsonSpanFields).event_format(FlatJson).with_writer(writer),
        );
        // As `logging::init` sets it when it installs the JSON logger.
        crate::logging::set_json_only(true);
        tracing::subscriber::with_default(subscriber, || {
            use tracing::field::Empty;
            let span = tracing::info_span!("request", method = Empty, route = Empty, path = Empty, request_id = Empty);
            assert!(defer_request_fields(&span, http()).is_none(), "kept as values");
            span.in_scope(|| tracing::info!("in the request"));
            let call = tracing::info_span!("grpc", service = Empty, method = Empty, code = Empty);
            assert!(defer_request_fields(&call, grpc()).is_none());
            call.record("code", "OK");
            call.in_scope(|| tracing::info!("in the call"));
        });
        crate::logging::set_json_only(false);
        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let request = &lines[0];
        assert_eq!(request["method"], "GET");
        assert_eq!(request["route"], "/users/{id}");
        assert_eq!(request["path"], "/users/7");
        assert_eq!(request["request_id"], "req-1");
        assert_eq!(request["span"], "request");
        let call = &lines[1];
        assert_eq!(call["service"], "users.v1.Users");
        assert_eq!(call["method"], "Get");
        assert_eq!(call["code"], "OK", "fields recorded later are written too");
        assert!(call.get("request_id").is_none(), "{call}");
    }

    #[test]
    fn any_other_subscriber_gets_the_fields_back() {
        let _flag = FLAG.lock().unwrap_or_else(|p| p.into_inner());
        let (writer, _) = capture();
        let pretty = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(writer));
        crate::logging::set_json_only(true);
        tracing::subscriber::with_default(pretty, || {
            let span = tracing::info_span!("request", method = tracing::field::Empty);
            assert!(defer_request_fields(&span, http()).is_some(), "no FlatJson: recorded as fields");
        });
        crate::logging::set_json_only(false);
        let (writer, _) = capture();
        let json = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer().fmt_fields(JsonSpanFields).event_format(FlatJson).with_writer(writer),
        );
        tracing::subscriber::with_default(json, || {
            let span = tracing::info_span!("request", method = tracing::field::Empty);
            assert!(defer_request_fields(&span, http()).is_some(), "not the JSON-only logger `init` installed");
        });
    }

    #[test]
    fn fields_come_in_the_span_order() {
        let mut names = Vec::new();
        http().for_each(|name, _| names.push(name));
        grpc().for_each(|name, _| names.push(name));
        assert_eq!(names, ["method", "route", "path", "request_id", "service", "method"]);
    }
}
