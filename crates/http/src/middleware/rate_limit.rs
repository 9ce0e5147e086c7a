//! Rate limiting with token buckets (governor): per authenticated subject when the request
//! carries verified claims, per client IP otherwise. Over the limit: `429` problem details with
//! `Retry-After`. The limits follow hot reloads of `http.rate_limit`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{HeaderValue, Request, header};
use tower::{Layer, Service};

use microframework_auth::Claims;
use microframework_core::{ErrorKind, ProblemDetails};

use crate::config::{Bucket, RateLimitConfig, path_matches};
use crate::error::problem_response;

struct Limiters {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_subject: DefaultKeyedRateLimiter<String>,
    trust_forwarded_for: bool,
    exempt: Vec<String>,
}

fn quota(b: Bucket) -> Quota {
    let rps = NonZeroU32::new(b.requests_per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(b.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rps).allow_burst(burst)
}

/// The live limiter set; [`RateLimiter::update`] swaps it on reload.
#[derive(Clone, Default)]
pub struct RateLimiter {
    current: Arc<ArcSwapOption<Limiters>>,
    framework_paths: Arc<Vec<String>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("enabled", &self.current.load().is_some()).finish()
    }
}

impl RateLimiter {
    /// A limiter from configuration; `framework_paths` are never limited.
    pub fn new(cfg: &RateLimitConfig, framework_paths: Vec<String>) -> Self {
        let this = Self { current: Arc::default(), framework_paths: Arc::new(framework_paths) };
        this.update(cfg);
        this
    }

    /// Applies new settings. Buckets restart full when the settings change.
    pub fn update(&self, cfg: &RateLimitConfig) {
        let limiters = cfg.enabled.then(|| {
            Arc::new(Limiters {
                per_ip: governor::RateLimiter::keyed(quota(cfg.per_ip)),
                per_subject: governor::RateLimiter::keyed(quota(cfg.per_subject)),
                trust_forwarded_for: cfg.trust_forwarded_for,
                exempt: cfg.exempt_paths.clone(),
            })
        });
        self.current.store(limiters);
    }

    /// Forgets idle clients; call periodically so that memory stays bounded.
    pub fn cleanup(&self) {
        if let Some(l) = self.current.load_full() {
            l.per_ip.retain_recent();
            l.per_subject.retain_recent();
            l.per_ip.shrink_to_fit();
            l.per_subject.shrink_to_fit();
        }
    }

    /// `Some(wait)` when the request must be refused (and retried after `wait`); takes a token
    /// from the bucket of the request's subject (verified [`Claims`] in its extensions) or client
    /// IP otherwise. The framework's paths, `exempt_paths` and everything while the limiter is
    /// off are never refused. Other protocols (gRPC calls) use it to share the buckets.
    pub fn check<B>(&self, req: &Request<B>) -> Option<Duration> {
        let guard = self.current.load();
        let limiters = guard.as_ref()?;
        let path = req.uri().path();
        if path_matches(&self.framework_paths, path) || path_matches(&limiters.exempt, path) {
            return None;
        }
        let clock = DefaultClock::default();
        let outcome = match req.extensions().get::<Claims>().and_then(|c| c.sub.as_deref()) {
            Some(sub) => limiters.per_subject.check_key(&sub.to_owned()),
            None => limiters.per_ip.check_key(&client_ip(req, limiters.trust_forwarded_for)?),
        };
        outcome.err().map(|not_until| not_until.wait_time_from(clock.now()))
    }
}

fn client_ip<B>(req: &Request<B>, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The `429` response.
pub fn too_many_requests(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let problem = ProblemDetails::new(
        ErrorKind::TooManyRequests,
        format!("Rate limit exceeded; retry in {secs} second{}.", if secs == 1 { "" } else { "s" }),
    );
    let mut res = problem_response(problem);
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// Layer that applies a [`RateLimiter`].
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl RateLimitLayer {
    /// A layer over `limiter`.
    pub fn new(limiter: RateLimiter) -> Self {
        Self { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit { inner, limiter: self.limiter.clone() }
    }
}

/// Service of [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limiter: RateLimiter,
}

impl<S, B> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.limiter.check(&req) {
            Some(wait) => Either::Right(ready(Ok(too_many_requests(wait)))),
            None => Either::Left(self.inner.call(req)),
        }
    }
}
