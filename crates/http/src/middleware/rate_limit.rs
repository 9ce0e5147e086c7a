//! Rate limiting with token buckets (governor), in two stages. Before authentication, every
//! request takes a token from the bucket of its client address (resolved by
//! [`ClientIpResolver`]), so that a flood of forged tokens costs the server no signature check;
//! after authentication, a request with verified claims also takes one from the bucket of its
//! subject. Over the limit: `429` problem details with `Retry-After`. The limits follow hot
//! reloads of `http.rate_limit`.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use axum::body::Body;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{HeaderValue, Request, header};
use tower::{Layer, Service};

use microframework_auth::Claims;
use microframework_core::{ErrorKind, ProblemDetails};

use crate::client_ip::ClientIpResolver;
use crate::config::{Bucket, RateLimitConfig, path_matches};
use crate::error::problem_response;

/// The bucket key of requests without a peer address (an in-process call, a listener that does
/// not record peers): they share one bucket rather than go unlimited.
const NO_PEER: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

struct Limiters {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_subject: DefaultKeyedRateLimiter<String>,
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
    client_ip: Arc<ClientIpResolver>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("enabled", &self.current.load().is_some()).finish()
    }
}

/// Which bucket a [`RateLimitLayer`] takes tokens from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The client address's bucket, for every request: before authentication.
    Client,
    /// The subject's bucket, for requests with verified claims: after authentication.
    Subject,
}

impl RateLimiter {
    /// A limiter from configuration; `framework_paths` are never limited and `client_ip` tells
    /// the client address of a request.
    pub fn new(cfg: &RateLimitConfig, framework_paths: Vec<String>, client_ip: ClientIpResolver) -> Self {
        let this = Self {
            current: Arc::default(),
            framework_paths: Arc::new(framework_paths),
            client_ip: Arc::new(client_ip),
        };
        this.update(cfg);
        this
    }

    /// Applies new settings. Buckets restart full when the settings change.
    pub fn update(&self, cfg: &RateLimitConfig) {
        let limiters = cfg.enabled.then(|| {
            Arc::new(Limiters {
                per_ip: governor::RateLimiter::keyed(quota(cfg.per_ip)),
                per_subject: governor::RateLimiter::keyed(quota(cfg.per_subject)),
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

    /// The limiters when `req` is subject to limits (on, and not an exempt path).
    fn limiters_for<B>(&self, req: &Request<B>) -> Option<arc_swap::Guard<Option<Arc<Limiters>>>> {
        let guard = self.current.load();
        let limiters = guard.as_ref()?;
        let path = req.uri().path();
        if path_matches(&self.framework_paths, path) || path_matches(&limiters.exempt, path) {
            return None;
        }
        Some(guard)
    }

    /// `Some(wait)` when the request must be refused (and retried after `wait`): takes a token
    /// from the bucket of the request's client address. Run before authentication. The
    /// framework's paths, `exempt_paths` and everything while the limiter is off are never
    /// refused. Other protocols (gRPC calls) use it to share the buckets.
    pub fn check_client<B>(&self, req: &Request<B>) -> Option<Duration> {
        let guard = self.limiters_for(req)?;
        let limiters = guard.as_ref()?;
        let ip = self.client_ip.resolve(req).unwrap_or(NO_PEER);
        let clock = DefaultClock::default();
        limiters.per_ip.check_key(&ip).err().map(|not_until| not_until.wait_time_from(clock.now()))
    }

    /// Like [`check_client`](Self::check_client) for the bucket of the request's subject (its
    /// verified [`Claims`]); requests without claims pass. Run after authentication.
    pub fn check_subject<B>(&self, req: &Request<B>) -> Option<Duration> {
        let sub = req.extensions().get::<Claims>().and_then(|c| c.sub.as_deref())?;
        let guard = self.limiters_for(req)?;
        let limiters = guard.as_ref()?;
        let clock = DefaultClock::default();
        limiters.per_subject.check_key(&sub.to_owned()).err().map(|not_until| not_until.wait_time_from(clock.now()))
    }

    /// [`check_client`](Self::check_client) or [`check_subject`](Self::check_subject).
    pub fn check<B>(&self, req: &Request<B>, stage: Stage) -> Option<Duration> {
        match stage {
            Stage::Client => self.check_client(req),
            Stage::Subject => self.check_subject(req),
        }
    }
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

/// Layer that applies one [`Stage`] of a [`RateLimiter`].
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
    stage: Stage,
}

impl RateLimitLayer {
    /// A layer taking tokens from `limiter`'s buckets of `stage`.
    pub fn new(limiter: RateLimiter, stage: Stage) -> Self {
        Self { limiter, stage }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit { inner, limiter: self.limiter.clone(), stage: self.stage }
    }
}

/// Service of [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limiter: RateLimiter,
    stage: Stage,
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
        match self.limiter.check(&req, self.stage) {
            Some(wait) => Either::Right(ready(Ok(too_many_requests(wait)))),
            None => Either::Left(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32) -> RateLimiter {
        let cfg = RateLimitConfig {
            enabled: true,
            per_ip: Bucket { requests_per_second: 1, burst },
            ..RateLimitConfig::default()
        };
        RateLimiter::new(&cfg, vec!["/health/*".into()], ClientIpResolver::default())
    }

    #[test]
    fn requests_without_a_peer_address_share_one_bucket() {
        let limiter = limiter(2);
        let req = || Request::get("/orders").body(()).unwrap();
        assert_eq!(limiter.check_client(&req()), None);
        assert_eq!(limiter.check_client(&req()), None);
        assert!(limiter.check_client(&req()).is_some(), "no peer address is not a free pass");
        assert_eq!(limiter.check_client(&Request::get("/health/live").body(()).unwrap()), None);
    }

    #[test]
    fn the_subject_stage_ignores_anonymous_requests() {
        let limiter = limiter(1);
        let anonymous = Request::get("/orders").body(()).unwrap();
        for _ in 0..5 {
            assert_eq!(limiter.check_subject(&anonymous), None);
        }
    }
}
