//! The gRPC load generator of `cargo xtask bench grpc`: `bench.v1.Greeter/SayHello` from a tonic
//! client, `concurrency` calls in flight spread over `connections` HTTP/2 connections, for a fixed
//! time after a warm-up on the same connections.
//!
//! `bench grpc` runs it as a separate process from a release build of xtask (the hidden
//! `cargo xtask bench grpc-load` command): a debug build of tonic/hyper/h2 would spend far more of
//! the shared CPU than the servers under test. It prints one JSON line ([`LoadResult`]) on stdout.
//!
//! Every call's latency is recorded in microseconds, in a `Vec<u32>` per in-flight slot sized
//! from the warm-up's rate (so recording does not allocate while measuring); percentiles come
//! from the merged, sorted latencies (nearest rank). A call counts as an error when it fails or
//! its reply is not the expected greeting; errors are counted, not timed.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod pb {
    tonic::include_proto!("bench.v1");
}

use pb::HelloRequest;
use pb::greeter_client::GreeterClient;

/// The name every call sends.
pub(crate) const NAME: &str = "world";
/// The reply every call must get.
pub(crate) const EXPECTED: &str = "Hello, world!";
/// The deadline sent with every call (`grpc-timeout`), as a real client would.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// Headroom over the warm-up's rate when sizing the latency buffers.
const CAPACITY_HEADROOM: f64 = 4.0;

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
        let line = stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'))
            .context("the load generator printed no JSON line")?;
        serde_json::from_str(line).with_context(|| format!("parsing the load generator's result `{line}`"))
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
    let endpoint = Endpoint::from_shared(args.addr.clone())
        .with_context(|| format!("invalid address `{}`", args.addr))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    let mut channels = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        // Each `connect` opens its own HTTP/2 connection.
        channels.push(endpoint.connect().await.with_context(|| format!("connecting to {}", args.addr))?);
    }

    let warm = phase(&channels, args.concurrency, args.warmup, 1024).await?;
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
    let slots = phase(&channels, args.concurrency, args.duration, capacity).await?;
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

/// `concurrency` slots calling in a loop until `duration` has passed, slot `i` on connection
/// `i % connections`.
async fn phase(
    channels: &[Channel],
    concurrency: u32,
    duration: Duration,
    capacity: usize,
) -> anyhow::Result<Vec<Slot>> {
    let end = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency as usize)
        .map(|i| {
            let client = GreeterClient::new(channels[i % channels.len()].clone());
            tokio::spawn(slot(client, end, capacity))
        })
        .collect();
    let mut slots = Vec::with_capacity(tasks.len());
    for t in tasks {
        slots.push(t.await.context("a load task panicked")?);
    }
    Ok(slots)
}

async fn slot(mut client: GreeterClient<Channel>, end: Instant, capacity: usize) -> Slot {
    let mut s = Slot { latencies: Vec::with_capacity(capacity), errors: 0, first_error: None, regrown: false };
    while Instant::now() < end {
        let mut request = tonic::Request::new(HelloRequest { name: NAME.to_owned() });
        request.set_timeout(CALL_DEADLINE);
        let started = Instant::now();
        let reply = client.say_hello(request).await;
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match reply {
            Ok(r) if r.get_ref().message == EXPECTED => {
                if s.latencies.len() == s.latencies.capacity() {
                    s.regrown = true;
                }
                s.latencies.push(us);
            }
            Ok(r) => {
                s.errors += 1;
                s.first_error.get_or_insert_with(|| format!("unexpected reply {:?}", r.get_ref().message));
            }
            Err(status) => {
                s.errors += 1;
                s.first_error.get_or_insert_with(|| status.to_string());
            }
        }
    }
    s
}

/// One `SayHello` call on a fresh connection, answered with the expected greeting within
/// `timeout` (the readiness probe of `bench grpc`).
pub(crate) async fn probe(addr: &str, timeout: Duration) -> bool {
    let call = async {
        let channel = Endpoint::from_shared(addr.to_owned()).ok()?.connect().await.ok()?;
        let reply = GreeterClient::new(channel).say_hello(HelloRequest { name: NAME.to_owned() }).await.ok()?;
        Some(reply.into_inner().message == EXPECTED)
    };
    matches!(tokio::time::timeout(timeout, call).await, Ok(Some(true)))
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
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("x").is_err());
    }
}
