//! Security response headers (CSP, `X-Content-Type-Options`, `X-Frame-Options`,
//! `Referrer-Policy`, HSTS when configured), set unless the handler already set them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::config::SecurityHeadersConfig;

/// Layer that adds security headers.
#[derive(Clone, Debug)]
pub struct SecurityHeadersLayer {
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl SecurityHeadersLayer {
    /// Builds the header set from configuration; invalid values (rejected by validation) are skipped.
    pub fn new(cfg: &SecurityHeadersConfig) -> Self {
        let mut headers = Vec::new();
        // Values known at compile time are static: cloning one per response touches no counter.
        let mut push = |name: HeaderName, value: &str| {
            let v = match value {
                "" => return,
                "nosniff" => HeaderValue::from_static("nosniff"),
                "0" => HeaderValue::from_static("0"),
                "DENY" => HeaderValue::from_static("DENY"),
                "SAMEORIGIN" => HeaderValue::from_static("SAMEORIGIN"),
                "no-referrer" => HeaderValue::from_static("no-referrer"),
                "strict-origin-when-cross-origin" => HeaderValue::from_static("strict-origin-when-cross-origin"),
                other => match HeaderValue::from_str(other) {
                    Ok(v) => v,
                    Err(_) => return,
                },
            };
            headers.push((name, v));
        };
        if cfg.content_type_options {
            push(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        }
        push(header::X_FRAME_OPTIONS, &cfg.frame_options.to_ascii_uppercase());
        push(header::REFERRER_POLICY, &cfg.referrer_policy);
        push(header::CONTENT_SECURITY_POLICY, &cfg.content_security_policy);
        // Legacy XSS auditors do more harm than good; OWASP recommends switching them off.
        push(header::X_XSS_PROTECTION, "0");
        if cfg.hsts.enabled {
            let mut v = format!("max-age={}", cfg.hsts.max_age.as_secs());
            if cfg.hsts.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if cfg.hsts.preload {
                v.push_str("; preload");
            }
            push(header::STRICT_TRANSPORT_SECURITY, &v);
        }
        Self { headers: headers.into() }
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner, headers: self.headers.clone() }
    }
}

/// Service of [`SecurityHeadersLayer`].
#[derive(Clone, Debug)]
pub struct SecurityHeaders<S> {
    inner: S,
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl<S, B, ResB> Service<Request<B>> for SecurityHeaders<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = SecurityHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        SecurityHeadersFuture { inner: self.inner.call(req), headers: self.headers.clone() }
    }
}

pin_project! {
    /// Response future of [`SecurityHeaders`].
    pub struct SecurityHeadersFuture<F> {
        #[pin]
        inner: F,
        headers: Arc<[(HeaderName, HeaderValue)]>,
    }
}

impl<F, ResB, E> Future for SecurityHeadersFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        let map = res.headers_mut();
        map.reserve(this.headers.len());
        apply(this.headers, map);
        Poll::Ready(Ok(res))
    }
}

impl SecurityHeadersLayer {
    /// How many headers [`apply`](Self::apply) may add.
    pub(crate) fn len(&self) -> usize {
        self.headers.len()
    }

    /// Adds the headers that `map` lacks (room for them is the caller's to reserve).
    pub(crate) fn apply(&self, map: &mut HeaderMap) {
        apply(&self.headers, map);
    }
}

fn apply(headers: &[(HeaderName, HeaderValue)], map: &mut HeaderMap) {
    for (name, value) in headers {
        // One hash per header: the entry is vacant unless the handler set it.
        if let http::header::Entry::Vacant(slot) = map.entry(name) {
            slot.insert(value.clone());
        }
    }
}
