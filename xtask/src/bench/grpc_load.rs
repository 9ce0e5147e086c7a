//! The gRPC load generator of `cargo xtask bench grpc`: one unary method from a tonic client,
//! `concurrency` calls in flight spread over `connections` HTTP/2 connections, for a fixed time
//! after a warm-up on the same connections.
//!
//! The call is a [`Call`]: a method path, a request message encoded once up front and, usually,
//! the exact reply expected. It goes through `tonic::client::Grpc` with a raw-bytes codec
//! ([`RawCodec`]), so any service can be loaded without a generated client; by default it is
//! `bench.v1.Greeter/SayHello` ([`Call::greeter`]).
//!
//! `bench grpc` runs it as a separate process from a release build of xtask (the hidden
//! `cargo xtask bench grpc-load` command): a debug build of tonic/hyper/h2 would spend far more of
//! the shared CPU than the servers under test. It prints one JSON line ([`LoadResult`]) on stdout.
//!
//! Every call's latency is recorded in microseconds, in a `Vec<u32>` per in-flight slot sized
//! from the warm-up's rate (so recording does not allocate while measuring); percentiles come
//! from the merged, sorted latencies (nearest rank). A call counts as an error when it fails or
//! its reply is not the expected one; errors are counted, not timed.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use prost::Message as _;
use prost::bytes::{Buf as _, BufMut as _, Bytes};
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod pb {
    tonic::include_proto!("bench.v1");
}

use pb::{HelloReply, HelloRequest};

/// The method of the default call.
pub(crate) const GREETER_PATH: &str = "/bench.v1.Greeter/SayHello";
/// The name every default call sends.
pub(crate) const NAME: &str = "world";
/// The reply every default call must get.
pub(crate) const EXPECTED: &str = "Hello, world!";
/// The deadline sent with every call (`grpc-timeout`), as a real client would.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// Headroom over the warm-up's rate when sizing the latency buffers.
const CAPACITY_HEADROOM: f64 = 4.0;
/// How much of an unexpected reply an error message shows.
const SHOWN_REPLY_BYTES: usize = 64;

/// One unary call: the method, the encoded request and the encoded reply it must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) path: PathAndQuery,
    pub(crate) request: Bytes,
    /// The exact reply; `None` accepts any successful one.
    pub(crate) expect: Option<Bytes>,
}

impl Call {
    /// A call of `path` (`/package.Service/Method`).
    pub(crate) fn new(path: &str, request: impl Into<Bytes>, expect: Option<Bytes>) -> anyhow::Result<Self> {
        let mut parts = path.strip_prefix('/').unwrap_or_default().split('/');
        let well_formed = matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(service), Some(method), None) if !service.is_empty() && !method.is_empty()
        );
        if !well_formed || path.contains(['?', '#', ' ']) {
            bail!("`{path}` is not a gRPC method path (expected /package.Service/Method)");
        }
        let path = PathAndQuery::try_from(path).with_context(|| format!("invalid method path `{path}`"))?;
        Ok(Self { path, request: request.into(), expect })
    }

    /// `bench.v1.Greeter/SayHello` with `{name: "world"}`, answered `Hello, world!`.
    pub(crate) fn greeter() -> Self {
        Self {
            path: PathAndQuery::from_static(GREETER_PATH),
            request: HelloRequest { name: NAME.to_owned() }.encode_to_vec().into(),
            expect: Some(HelloReply { message: EXPECTED.to_owned() }.encode_to_vec().into()),
        }
    }

    /// The `grpc-load` options that make this call.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args =
            vec!["--method".to_owned(), self.path.to_string(), "--request".to_owned(), to_hex(&self.request)];
        if let Some(expect) = &self.expect {
            args.extend(["--expect".to_owned(), to_hex(expect)]);
        }
        args
    }

    /// Whether `reply` is what this call must get.
    fn accepts(&self, reply: &Bytes) -> bool {
        self.expect.as_ref().is_none_or(|e| e == reply)
    }
}

/// A [`Codec`] of already encoded messages: requests are copied as they are, replies are the
/// message bytes as they arrive.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

/// The encoder of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawEncoder;

/// The decoder of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The bytes of a hex string (either case, no separators).
pub(crate) fn parse_hex(s: &str) -> Result<Hex, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("`{s}`: odd number of hex digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{s}`: not hex (expected e.g. 0a05776f726c64)"))
        })
        .collect::<Result<_, _>>()
        .map(Hex)
}

/// Options of the hidden `cargo xtask bench grpc-load` (run by `bench grpc`).
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadArgs {
    /// Server address, e.g. `http://127.0.0.1:50051`.
    #[arg(long)]
    pub(crate) addr: String,
    /// Length of the measured run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Length of the warm-up on the same connections (not recorded).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Calls in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,
    /// HTTP/2 connections the calls are spread over (round robin).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) connections: u32,
    /// Tokio worker threads of the load generator (1: a current-thread runtime).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) threads: u32,
    /// The unary method to call, e.g. `/bench.v1.Greeter/SayHello` (the default, with its
    /// request and reply).
    #[arg(long, value_name = "PATH")]
    pub(crate) method: Option<String>,
    /// The request message of --method, protobuf-encoded, in hex (default: the empty message).
    #[arg(long, value_name = "HEX", requires = "method", value_parser = parse_hex)]
    pub(crate) request: Option<Hex>,
    /// The reply every call of --method must get, protobuf-encoded, in hex (default: any
    /// successful reply).
    #[arg(long, value_name = "HEX", requires = "method", value_parser = parse_hex)]
    pub(crate) expect: Option<Hex>,
}

/// Bytes given in hex on the command line (a newtype: clap would read a `Vec<u8>` as a list of
/// numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hex(pub(crate) Vec<u8>);

impl LoadArgs {
    /// The call to make.
    pub(crate) fn call(&self) -> anyhow::Result<Call> {
        match &self.method {
            None => Ok(Call::greeter()),
            Some(path) => {
                let request = self.request.clone().map(|h| h.0).unwrap_or_default();
                Call::new(path, request, self.expect.clone().map(|h| Bytes::from(h.0)))
            }
        }
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (expected e.g. 10s or 500ms)"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: must be longer than 0"));
    }
    Ok(d)
}

/// What one measured run produced (the JSON line on stdout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoadResult {
    /// Successful calls.
    pub(crate) requests: u64,
    /// Failed calls and wrong replies.
    pub(crate) errors: u64,
    /// The first error seen, if any.
    pub(crate) first_error: Option<String>,
    /// From the start of the run until the last call in flight at its end returned.
    pub(crate) elapsed_s: f64,
    /// `requests / elapsed_s`.
    pub(crate) rps: f64,
    pub(crate) mean_us: f64,
    pub(crate) p50_us: u32,
    pub(crate) p90_us: u32,
    pub(crate) p99_us: u32,
    pub(crate) p999_us: u32,
    pub(crate) max_us: u32,
    /// Whether a latency buffer had to grow while measuring (the warm-up underestimated the rate).
    pub(crate) regrown: bool,
}

impl LoadResult {
    /// Parses the last JSON line of the load generator's stdout.
    pub(crate) fn parse(stdout: &str) -> anyhow::Result<Self> {
        super::parse_last_json_line(stdout, "the load generator")
    }
}

/// The value at percentile `p` (0–100] of `sorted` by nearest rank; `None` when empty.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    // The tolerance keeps float noise (99.9 / 100 × 1000 = 999.000…1) from moving up a rank.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency summary of the successful calls (`latencies` is sorted in place).
pub(crate) fn summarise(
    latencies: &mut [u32],
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    regrown: bool,
) -> LoadResult {
    latencies.sort_unstable();
    let n = latencies.len() as u64;
    let at = |p: f64| percentile(latencies, p).unwrap_or(0);
    let secs = elapsed.as_secs_f64();
    LoadResult {
        requests: n,
        errors,
        first_error,
        elapsed_s: secs,
        rps: if secs > 0.0 { n as f64 / secs } else { 0.0 },
        mean_us: if n > 0 { latencies.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64 } else { 0.0 },
        p50_us: at(50.0),
        p90_us: at(90.0),
        p99_us: at(99.0),
        p999_us: at(99.9),
        max_us: latencies.last().copied().unwrap_or(0),
        regrown,
    }
}

/// One in-flight slot's record.
struct Slot {
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    regrown: bool,
}

/// Runs the load and prints the result as one JSON line.
pub(crate) fn run(args: &LoadArgs) -> anyhow::Result<()> {
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads as usize).enable_all().build()?
    };
    let result = runtime.block_on(load(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn load(args: &LoadArgs) -> anyhow::Result<LoadResult> {
    let call = args.call()?;
    let endpoint = Endpoint::from_shared(args.addr.clone())
        .with_context(|| format!("invalid address `{}`", args.addr))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    let mut channels = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        // Each `connect` opens its own HTTP/2 connection.
        channels.push(endpoint.connect().await.with_context(|| format!("connecting to {}", args.addr))?);
    }

    let warm = phase(&channels, &call, args.concurrency, args.warmup, 1024).await?;
    let warm_calls: usize = warm.iter().map(|s| s.latencies.len()).sum();
    if warm_calls == 0 {
        let first = warm.iter().find_map(|s| s.first_error.clone()).unwrap_or_default();
        bail!("no call succeeded during the warm-up: {first}");
    }
    let rate = warm_calls as f64 / args.warmup.as_secs_f64();
    let per_slot = (rate * args.duration.as_secs_f64() * CAPACITY_HEADROOM / f64::from(args.concurrency)).ceil();
    let capacity = (per_slot as usize).max(1024);

    // `bench grpc` starts reading the server's CPU time and memory here.
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", super::grpc::MEASURING)?;
        stdout.flush()?;
    }
    let started = Instant::now();
    let slots = phase(&channels, &call, args.concurrency, args.duration, capacity).await?;
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(slots.iter().map(|s| s.latencies.len()).sum());
    let (mut errors, mut first_error, mut regrown) = (0, None, false);
    for s in slots {
        latencies.extend_from_slice(&s.latencies);
        errors += s.errors;
        regrown |= s.regrown;
        if first_error.is_none() {
            first_error = s.first_error;
        }
    }
    Ok(summarise(&mut latencies, errors, first_error, elapsed, regrown))
}

/// `concurrency` slots making `call` in a loop until `duration` has passed, slot `i` on
/// connection `i % connections`.
async fn phase(
    channels: &[Channel],
    call: &Call,
    concurrency: u32,
    duration: Duration,
    capacity: usize,
) -> anyhow::Result<Vec<Slot>> {
    let end = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency as usize)
        .map(|i| {
            let client = Grpc::new(channels[i % channels.len()].clone());
            tokio::spawn(slot(client, call.clone(), end, capacity))
        })
        .collect();
    let mut slots = Vec::with_capacity(tasks.len());
    for t in tasks {
        slots.push(t.await.context("a load task panicked")?);
    }
    Ok(slots)
}

/// One call on `client`: what a generated client's method does (wait until the channel is ready,
/// then send), with the raw codec.
async fn unary(client: &mut Grpc<Channel>, call: &Call, deadline: Option<Duration>) -> Result<Bytes, Status> {
    client.ready().await.map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
    let mut request = tonic::Request::new(call.request.clone());
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    Ok(client.unary(request, call.path.clone(), RawCodec).await?.into_inner())
}

async fn slot(mut client: Grpc<Channel>, call: Call, end: Instant, capacity: usize) -> Slot {
    let mut s = Slot { latencies: Vec::with_capacity(capacity), errors: 0, first_error: None, regrown: false };
    while Instant::now() < end {
        let started = Instant::now();
        let reply = unary(&mut client, &call, Some(CALL_DEADLINE)).await;
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match reply {
            Ok(reply) if call.accepts(&reply) => {
                if s.latencies.len() == s.latencies.capacity() {
                    s.regrown = true;
                }
                s.latencies.push(us);
            }
            Ok(reply) => {
                s.errors += 1;
                s.first_error.get_or_insert_with(|| unexpected(&reply));
            }
            Err(status) => {
                s.errors += 1;
                s.first_error.get_or_insert_with(|| status.to_string());
            }
        }
    }
    s
}

/// The error message of a wrong reply.
fn unexpected(reply: &[u8]) -> String {
    let shown = &reply[..reply.len().min(SHOWN_REPLY_BYTES)];
    let more = if reply.len() > shown.len() { "…" } else { "" };
    format!("unexpected reply ({} bytes): {}{more}", reply.len(), to_hex(shown))
}

/// One `call` on a fresh connection, with `timeout` for all of it (connecting included): the
/// reply, or why there is none. The connection is closed when this returns.
pub(crate) async fn call_once(addr: &str, call: &Call, timeout: Duration) -> anyhow::Result<Bytes> {
    let go = async {
        let channel = Endpoint::from_shared(addr.to_owned())?.connect().await?;
        anyhow::Ok(unary(&mut Grpc::new(channel), call, Some(timeout)).await?)
    };
    tokio::time::timeout(timeout, go).await.with_context(|| format!("no reply within {timeout:?}"))?
}

/// One `call` on a fresh connection that gets the expected reply within `timeout` (the readiness
/// probe of `bench grpc`).
pub(crate) async fn probe(addr: &str, call: &Call, timeout: Duration) -> bool {
    call_once(addr, call, timeout).await.is_ok_and(|reply| call.accepts(&reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.9), Some(100));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99.9), Some(999));
    }

    #[test]
    fn summary_sorts_and_counts() {
        let mut v = vec![300, 100, 200, 400, 1000];
        let r = summarise(&mut v, 2, Some("boom".into()), Duration::from_millis(500), false);
        assert_eq!(v, [100, 200, 300, 400, 1000]);
        assert_eq!(r.requests, 5);
        assert_eq!(r.errors, 2);
        assert_eq!(r.rps, 10.0);
        assert_eq!(r.mean_us, 400.0);
        assert_eq!((r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us), (300, 1000, 1000, 1000, 1000));
        let empty = summarise(&mut [], 3, None, Duration::ZERO, false);
        assert_eq!((empty.requests, empty.rps, empty.p99_us, empty.mean_us), (0, 0.0, 0, 0.0));
    }

    #[test]
    fn result_round_trips_through_the_last_json_line() {
        let r = summarise(&mut [5, 6, 7], 0, None, Duration::from_secs(1), true);
        let stdout = format!("some log line\n{}\n\n", serde_json::to_string(&r).unwrap());
        assert_eq!(LoadResult::parse(&stdout).unwrap(), r);
        assert!(LoadResult::parse("no json here\n").is_err());
        assert!(LoadResult::parse("{\"requests\": 1}\n").is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(to_hex(&[0x0a, 0x05, 0xff, 0x00]), "0a05ff00");
        assert_eq!(parse_hex("0a05FF00"), Ok(Hex(vec![0x0a, 0x05, 0xff, 0x00])));
        assert_eq!(parse_hex(""), Ok(Hex(Vec::new())));
        assert!(parse_hex("0a0").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("é0").is_err());
    }

    #[test]
    fn the_default_call_is_the_greeting() {
        let call = Call::greeter();
        assert_eq!(call.path.as_str(), GREETER_PATH);
        assert_eq!(HelloRequest::decode(call.request.clone()).unwrap().name, "world");
        assert!(call.accepts(&HelloReply { message: "Hello, world!".into() }.encode_to_vec().into()));
        assert!(!call.accepts(&HelloReply { message: "Hello, you!".into() }.encode_to_vec().into()));
    }

    #[test]
    fn calls_pass_through_the_command_line() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            load: LoadArgs,
        }
        let parse = |extra: &[String]| {
            let args = ["grpc-load", "--addr", "http://127.0.0.1:1"].into_iter().map(String::from);
            Cli::try_parse_from(args.chain(extra.iter().cloned())).map(|c| c.load)
        };
        let greeter = Call::greeter();
        assert_eq!(parse(&greeter.args()).unwrap().call().unwrap(), greeter);
        assert_eq!(parse(&[]).unwrap().call().unwrap(), greeter);

        let any = Call::new("/pkg.v1.Items/Get", vec![0x0a, 0x01, 0x31], None).unwrap();
        assert_eq!(any.args(), ["--method", "/pkg.v1.Items/Get", "--request", "0a0131"]);
        assert_eq!(parse(&any.args()).unwrap().call().unwrap(), any);
        assert!(any.accepts(&Bytes::from_static(b"anything")));

        let empty = parse(&["--method".into(), "/pkg.v1.Items/List".into()]).unwrap().call().unwrap();
        assert!(empty.request.is_empty());
        assert!(parse(&["--request".into(), "0a".into()]).is_err(), "--request needs --method");
        for bad in ["pkg.v1.Items/Get", "/pkg.v1.Items", "/pkg.v1.Items/Get?x", "/a/b/c", "/x/", "//Get", ""] {
            assert!(Call::new(bad, Vec::new(), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn wrong_replies_are_shown_in_hex() {
        assert_eq!(unexpected(&[1, 2]), "unexpected reply (2 bytes): 0102");
        let long = unexpected(&[0xab; 100]);
        assert!(long.starts_with("unexpected reply (100 bytes): abab"), "{long}");
        assert!(long.ends_with("…"), "{long}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("x").is_err());
    }
}
