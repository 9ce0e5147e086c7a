//! `layers`: our HTTP middleware layers vs the tower-http layers for the same concern, measured
//! in-process (`cargo xtask bench layers` builds this in release, runs it and reports).
//!
//! Every case builds two stacks over the same trivial axum router, each applied the way
//! `apply_default_stack` applies the default middleware (`Router::layer`, then
//! `with_state(())`): ours (`microframework_http::middleware`) and the tower-http layer configured
//! to the same behaviour as far as it goes. Most cases also build the router without the layer,
//! so the report can tell what the layer itself costs. Each request is a real `http::Request`
//! with a small body, sent with `ServiceExt::ready` + `Service::call` on a clone of the router;
//! the handler reads the body through (so a body limit is exercised) and the response body is
//! read to its end. Before timing, one response of each stack is checked (status, headers,
//! problem+json body), so the two stacks of a case are known to answer alike. The tower-http
//! layers that change the response body type (catch-panic, body limit) get a `map_response` back
//! to axum's `Body` on top, as they would need in our stack, where every layer takes and returns
//! `Response<axum::body::Body>`.
//!
//! Everything runs on one current-thread tokio runtime. In each round, every case sends its
//! `--requests` per stack in chunks of `--chunk`, alternating the stacks chunk by chunk (ours,
//! tower-http, no layer, ours, tower-http, …), so that drift of the machine and other processes
//! taking the CPU hit both alike; the round's figure for a stack is the median ns/request of its
//! chunks, which a chunk slowed down by another process does not move. The result is one JSON
//! line on stdout: the figure of every round for every stack.
//!
//! ```text
//! layers [--rounds 9] [--requests 50000] [--chunk 1000] [--warmup 5000]
//! ```

use std::any::Any;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use axum::routing::post;
use http_body_util::BodyExt;
use serde::Serialize;
use tower::layer::util::{Identity, Stack};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::BoxError;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};

use microframework::core::{ErrorKind, ProblemDetails};
use microframework::http::middleware::{
    BodyLimitLayer, CatchPanicLayer, ProblemLayer, RequestIdLayer, RequestTimeoutLayer,
};
use microframework::http::problem_response;

/// The timeout of both timeout layers (never reached: the handlers answer at once).
const TIMEOUT: Duration = Duration::from_secs(30);
/// The body limit of both body-limit layers.
const LIMIT: usize = 1024;
/// The body of an ordinary request.
const SMALL: usize = 64;
/// The declared body of a request over the limit.
const LARGE: usize = 2 * LIMIT;
/// A well-formed client request id.
const CLIENT_ID: &str = "client-id-0123456789";

static PAYLOAD: [u8; LARGE] = [b'x'; LARGE];

fn x_request_id() -> HeaderName {
    HeaderName::from_static("x-request-id")
}

/// The router every stack wraps: `POST /` reads the body and answers `ok`; `POST /yield` does
/// the same after yielding to the runtime once (so its future is pending once, as a handler
/// that awaits anything is).
fn app() -> Router {
    Router::new()
        .route(
            "/",
            post(|body: Bytes| async move {
                std::hint::black_box(body);
                "ok"
            }),
        )
        .route(
            "/yield",
            post(|body: Bytes| async move {
                tokio::task::yield_now().await;
                std::hint::black_box(body);
                "ok"
            }),
        )
}

/// tower-http's panic handler configured to answer as ours does (log, then `500` problem details).
fn panic_problem(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic payload");
    microframework::tracing::error!(panic = message, "handler panicked; answered 500");
    problem_response(ProblemDetails::new(ErrorKind::Internal, "An unexpected error occurred."))
}

/// tower-http's request-id maker with our id generator (a UUID v4 formatted on the stack).
#[derive(Clone, Copy)]
struct OurIdMaker;

impl MakeRequestId for OurIdMaker {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<tower_http::request_id::RequestId> {
        Some(tower_http::request_id::RequestId::new(microframework::core::RequestId::generate().0))
    }
}

/// What a response must look like, checked once per stack before timing.
type Check = fn(&axum::http::response::Parts, &Bytes) -> Result<(), String>;

struct Case {
    name: &'static str,
    /// The same stack on both sides.
    control: bool,
    ours: &'static str,
    theirs: &'static str,
    path: &'static str,
    body: usize,
    client_id: bool,
    status: StatusCode,
    check: Check,
    ours_app: Router,
    theirs_app: Router,
    bare_app: Option<Router>,
}

fn ok_body(_: &axum::http::response::Parts, body: &Bytes) -> Result<(), String> {
    if body.as_ref() == b"ok" { Ok(()) } else { Err(format!("body {body:?}, expected \"ok\"")) }
}

fn generated_id(parts: &axum::http::response::Parts, body: &Bytes) -> Result<(), String> {
    ok_body(parts, body)?;
    let id = parts.headers.get("x-request-id").ok_or("no x-request-id on the response")?;
    if id.len() == 36 { Ok(()) } else { Err(format!("x-request-id {id:?} is not a UUID")) }
}

fn client_id(parts: &axum::http::response::Parts, body: &Bytes) -> Result<(), String> {
    ok_body(parts, body)?;
    match parts.headers.get("x-request-id") {
        Some(id) if id == CLIENT_ID => Ok(()),
        other => Err(format!("x-request-id {other:?}, expected the client's {CLIENT_ID}")),
    }
}

fn too_large(parts: &axum::http::response::Parts, body: &Bytes) -> Result<(), String> {
    let ct = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with(ProblemDetails::CONTENT_TYPE) {
        return Err(format!("content-type {ct:?}, expected problem+json"));
    }
    let problem: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let expected = format!("The request body exceeds the limit of {LIMIT} bytes.");
    if problem["status"] == 413 && problem["detail"] == expected.as_str() {
        Ok(())
    } else {
        Err(format!("problem {problem}, expected status 413 and detail {expected:?}"))
    }
}

fn cases() -> Vec<Case> {
    let ours_limit =
        || ServiceBuilder::new().layer(BodyLimitLayer::new(LIMIT as u64)).layer(DefaultBodyLimit::max(LIMIT));
    let theirs_limit = || {
        ServiceBuilder::new()
            .map_response(|res: Response<tower_http::limit::ResponseBody<Body>>| res.map(Body::new))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(LIMIT))
            .layer(DefaultBodyLimit::disable())
    };
    let ours_timeout = || RequestTimeoutLayer::new(TIMEOUT);
    let theirs_timeout =
        || tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, TIMEOUT);
    vec![
        // The same stack on both sides: the ratio the method measures when there is no difference.
        Case {
            name: "control: ours on both sides",
            control: true,
            ours: "CatchPanicLayer",
            theirs: "our CatchPanicLayer again",
            path: "/",
            body: SMALL,
            client_id: false,
            status: StatusCode::OK,
            check: ok_body,
            ours_app: app().layer(CatchPanicLayer).with_state(()),
            theirs_app: app().layer(CatchPanicLayer).with_state(()),
            bare_app: None,
        },
        Case {
            name: "timeout",
            control: false,
            ours: "RequestTimeoutLayer (30 s)",
            theirs: "TimeoutLayer::with_status_code(503, 30 s)",
            path: "/",
            body: SMALL,
            client_id: false,
            status: StatusCode::OK,
            check: ok_body,
            ours_app: app().layer(ours_timeout()).with_state(()),
            theirs_app: app().layer(theirs_timeout()).with_state(()),
            bare_app: Some(app().with_state(())),
        },
        Case {
            name: "timeout, handler pending once",
            control: false,
            ours: "RequestTimeoutLayer (30 s)",
            theirs: "TimeoutLayer::with_status_code(503, 30 s)",
            path: "/yield",
            body: SMALL,
            client_id: false,
            status: StatusCode::OK,
            check: ok_body,
            ours_app: app().layer(ours_timeout()).with_state(()),
            theirs_app: app().layer(theirs_timeout()).with_state(()),
            bare_app: Some(app().with_state(())),
        },
        Case {
            name: "catch-panic",
            control: false,
            ours: "CatchPanicLayer",
            theirs: "CatchPanicLayer::custom(500 problem+json), body mapped to axum's",
            path: "/",
            body: SMALL,
            client_id: false,
            status: StatusCode::OK,
            check: ok_body,
            ours_app: app().layer(CatchPanicLayer).with_state(()),
            theirs_app: app()
                .layer(
                    ServiceBuilder::new()
                        .map_response(|res: Response<tower_http::body::UnsyncBoxBody<Bytes, BoxError>>| {
                            res.map(Body::new)
                        })
                        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_problem)),
                )
                .with_state(()),
            bare_app: Some(app().with_state(())),
        },
        Case {
            name: "body limit, 64 B body read",
            control: false,
            ours: "BodyLimitLayer + DefaultBodyLimit::max (1 KiB)",
            theirs: "RequestBodyLimitLayer (1 KiB) + DefaultBodyLimit::disable, body mapped to axum's",
            path: "/",
            body: SMALL,
            client_id: false,
            status: StatusCode::OK,
            check: ok_body,
            ours_app: app().layer(ours_limit()).with_state(()),
            theirs_app: app().layer(theirs_limit()).with_state(()),
            bare_app: Some(app().with_state(())),
        },
        Case {
            name: "body limit, 2 KiB declared: 413",
            control: false,
            ours: "ProblemLayer + BodyLimitLayer + DefaultBodyLimit::max",
            theirs: "ProblemLayer + RequestBodyLimitLayer + DefaultBodyLimit::disable",
            path: "/",
            body: LARGE,
            client_id: false,
            status: StatusCode::PAYLOAD_TOO_LARGE,
            check: too_large,
            ours_app: app()
                .layer(ServiceBuilder::new().layer(ProblemLayer::new(Some(LIMIT as u64))).layer(ours_limit()))
                .with_state(()),
            theirs_app: app()
                .layer(ServiceBuilder::new().layer(ProblemLayer::new(Some(LIMIT as u64))).layer(theirs_limit()))
                .with_state(()),
            bare_app: None,
        },
        Case {
            name: "request id, generated",
            control: false,
            ours: "RequestIdLayer",
            theirs: "SetRequestIdLayer(MakeRequestUuid) + PropagateRequestIdLayer",
            path: "/",
            body: SMALL,
            client_id: false,
            status: StatusCode::OK,
            check: generated_id,
            ours_app: app().layer(RequestIdLayer::new(x_request_id())).with_state(()),
            theirs_app: app().layer(theirs_request_id(tower_http::request_id::MakeRequestUuid)).with_state(()),
            bare_app: Some(app().with_state(())),
        },
        Case {
            name: "request id, generated by our maker",
            control: false,
            ours: "RequestIdLayer",
            theirs: "SetRequestIdLayer(our UUID maker) + PropagateRequestIdLayer",
            path: "/",
            body: SMALL,
            client_id: false,
            status: StatusCode::OK,
            check: generated_id,
            ours_app: app().layer(RequestIdLayer::new(x_request_id())).with_state(()),
            theirs_app: app().layer(theirs_request_id(OurIdMaker)).with_state(()),
            bare_app: None,
        },
        Case {
            name: "request id, client's",
            control: false,
            ours: "RequestIdLayer",
            theirs: "SetRequestIdLayer + PropagateRequestIdLayer",
            path: "/",
            body: SMALL,
            client_id: true,
            status: StatusCode::OK,
            check: client_id,
            ours_app: app().layer(RequestIdLayer::new(x_request_id())).with_state(()),
            theirs_app: app().layer(theirs_request_id(tower_http::request_id::MakeRequestUuid)).with_state(()),
            bare_app: Some(app().with_state(())),
        },
    ]
}

/// tower-http's request-id stack: set (`maker` when the request has none), then propagate.
fn theirs_request_id<M: MakeRequestId + Clone>(
    maker: M,
) -> ServiceBuilder<Stack<PropagateRequestIdLayer, Stack<SetRequestIdLayer<M>, Identity>>> {
    ServiceBuilder::new().layer(SetRequestIdLayer::x_request_id(maker)).layer(PropagateRequestIdLayer::x_request_id())
}

impl Case {
    fn request(&self) -> Request<Body> {
        let mut req = Request::post(self.path)
            .header(header::CONTENT_LENGTH, self.body)
            .body(Body::from(Bytes::from_static(&PAYLOAD[..self.body])))
            .expect("a valid request");
        if self.client_id {
            req.headers_mut().insert(x_request_id(), HeaderValue::from_static(CLIENT_ID));
        }
        req
    }

    /// One request through `app`, its response read to the end.
    async fn send(&self, app: &Router) -> anyhow::Result<(axum::http::response::Parts, Bytes)> {
        let mut svc = app.clone();
        let res = ServiceExt::<Request<Body>>::ready(&mut svc).await?.call(self.request()).await?;
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.context("reading the response body")?.to_bytes();
        if parts.status != self.status {
            bail!("{}: status {}, expected {}", self.name, parts.status, self.status);
        }
        Ok((parts, bytes))
    }

    /// ns/request over `n` requests to `app`.
    async fn time(&self, app: &Router, n: u32) -> anyhow::Result<f64> {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(self.send(app).await?);
        }
        Ok(start.elapsed().as_nanos() as f64 / f64::from(n))
    }
}

#[derive(Serialize)]
struct CaseResult {
    name: &'static str,
    ours: &'static str,
    theirs: &'static str,
    ours_ns: Vec<f64>,
    theirs_ns: Vec<f64>,
    bare_ns: Vec<f64>,
    control: bool,
}

#[derive(Serialize)]
struct Output {
    rounds: u32,
    requests: u32,
    chunk: u32,
    warmup: u32,
    cases: Vec<CaseResult>,
}

fn arg(args: &[String], name: &str, default: u32) -> anyhow::Result<u32> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            let n: u32 = v.parse().with_context(|| format!("{name} `{v}`"))?;
            if n == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(n)
        }
        None => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds = arg(&args, "--rounds", 9)?;
    let requests = arg(&args, "--requests", 50_000)?;
    let chunk = arg(&args, "--chunk", 1_000)?;
    let warmup = arg(&args, "--warmup", 5_000)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let output = rt.block_on(measure(rounds, requests, chunk, warmup))?;
    println!("{}", serde_json::to_string(&output)?);
    Ok(())
}

/// The median of `values` (the upper middle one for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn measure(rounds: u32, requests: u32, chunk: u32, warmup: u32) -> anyhow::Result<Output> {
    let cases = cases();
    let mut results: Vec<CaseResult> = cases
        .iter()
        .map(|c| CaseResult {
            name: c.name,
            ours: c.ours,
            theirs: c.theirs,
            ours_ns: Vec::new(),
            theirs_ns: Vec::new(),
            bare_ns: Vec::new(),
            control: c.control,
        })
        .collect();
    for case in &cases {
        for (who, app) in [("ours", &case.ours_app), ("tower-http", &case.theirs_app)] {
            let (parts, body) = case.send(app).await?;
            (case.check)(&parts, &body).map_err(|e| anyhow::anyhow!("{}, {who}: {e}", case.name))?;
        }
        case.time(&case.ours_app, warmup).await?;
        case.time(&case.theirs_app, warmup).await?;
        if let Some(bare) = &case.bare_app {
            case.time(bare, warmup).await?;
        }
    }
    let chunks = requests.div_ceil(chunk);
    for round in 1..=rounds {
        let start = Instant::now();
        for (case, result) in cases.iter().zip(&mut results) {
            let (mut ours, mut theirs, mut bare) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..chunks {
                ours.push(case.time(&case.ours_app, chunk).await?);
                theirs.push(case.time(&case.theirs_app, chunk).await?);
                if let Some(app) = &case.bare_app {
                    bare.push(case.time(app, chunk).await?);
                }
            }
            result.ours_ns.push(median(ours));
            result.theirs_ns.push(median(theirs));
            if !bare.is_empty() {
                result.bare_ns.push(median(bare));
            }
        }
        eprintln!("round {round}/{rounds}: {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(Output { rounds, requests: chunks * chunk, chunk, warmup, cases: results })
}
