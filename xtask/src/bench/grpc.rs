//! `cargo xtask bench grpc`: the `bench.v1.Greeter` service on MicroFramework (`framework-grpc`,
//! the default gRPC stack with production logging) vs a bare tonic server (`baseline-tonic`),
//! both from the `bench-servers` package.
//!
//! Both servers and a release build of xtask (for the load generator, [`super::grpc_load`]) are
//! built with one cargo invocation. Each round starts both (one after the other: start-up time to
//! the first successful `SayHello`, idle RSS), then loads each in turn, the first target
//! alternating between rounds so slow drift of the machine hits both alike; during each measured
//! run the server's RSS is sampled and its CPU time read. Both are stopped with SIGTERM at the end
//! of a round and must exit 0.
//!
//! The load generator runs on the same cores as the server (one runtime thread by default), like
//! wrk in `bench http`. Nothing is pinned.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::grpc_load::{self, LoadResult};
use super::proc::{CpuTimes, Launch, Server, free_port};
use super::report::{self, dash, fmt_latency, ratio, spread};
use super::{Machine, command_line, load_average, median};
use crate::workspace_root;

const BASELINE: &str = "baseline-tonic";
const SERVICE: &str = "framework-grpc";
const LOADGEN: &str = "xtask";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_SETTLE: Duration = Duration::from_secs(1);
/// The line the load generator prints when the warm-up is over and the measured run starts.
pub(crate) const MEASURING: &str = "measuring";

/// Options of `cargo xtask bench grpc`.
#[derive(Debug, Args)]
pub(crate) struct GrpcArgs {
    /// Length of each measured run (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = grpc_load::parse_duration)]
    duration: Duration,
    /// Length of the warm-up before each measured run, on the same connections.
    #[arg(long, default_value = "2s", value_parser = grpc_load::parse_duration)]
    warmup: Duration,
    /// Calls in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// Runtime threads of the load generator. 1 by default so the server gets most of a small
    /// machine's CPU.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    client_threads: u32,
    /// Rounds to run; the report shows the median of each number.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Also write the report between `<!-- bench:grpc:start -->` and `<!-- bench:grpc:end -->`
    /// in this markdown file (relative paths are from the workspace root; created if absent).
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
    /// Record failed calls in the report instead of failing.
    #[arg(long)]
    allow_errors: bool,
    /// Skip `cargo build --release` and use the binaries already in the target directory.
    #[arg(long)]
    no_build: bool,
}

/// One server under test.
struct Target {
    name: &'static str,
    baseline: bool,
    exe: PathBuf,
}

/// A started target: the process (whose `port` is the HTTP port for the framework) and the gRPC
/// address.
struct Running {
    server: Server,
    grpc_addr: String,
}

impl Target {
    /// Starts the server; `work_dir` is the framework's working directory (its SQLite file).
    fn start(&self, root: &Path, work_dir: &Path) -> anyhow::Result<Running> {
        let grpc_port = free_port()?;
        let (launch, http_port) = if self.baseline {
            let launch = Launch {
                name: self.name.to_owned(),
                program: self.exe.clone(),
                args: vec![grpc_port.to_string()],
                cwd: root.to_owned(),
                env: Vec::new(),
                clear_env_prefixes: vec!["APP_".to_owned(), "RUST_LOG".to_owned()],
            };
            (launch, grpc_port)
        } else {
            let http_port = free_port()?;
            let launch = Launch {
                name: self.name.to_owned(),
                program: self.exe.clone(),
                args: Vec::new(),
                cwd: work_dir.to_owned(),
                env: [
                    ("APP_SERVER__HOST", "127.0.0.1".to_owned()),
                    ("APP_SERVER__PORT", http_port.to_string()),
                    ("APP_GRPC__HOST", "127.0.0.1".to_owned()),
                    ("APP_GRPC__PORT", grpc_port.to_string()),
                    // Production logging: JSON at info, so every call gets its trace span.
                    ("APP_LOGGING__LEVEL", "info".to_owned()),
                    ("APP_LOGGING__FORMAT", "json".to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
                // The caller's APP_* and RUST_LOG must not change what is measured.
                clear_env_prefixes: vec!["APP_".to_owned(), "RUST_LOG".to_owned()],
            };
            (launch, http_port)
        };
        let server = Server::spawn(&launch, http_port)?;
        Ok(Running { server, grpc_addr: format!("http://127.0.0.1:{grpc_port}") })
    }
}

/// The per-round measurements of one target.
#[derive(Debug, Clone, Default)]
pub(crate) struct GrpcRow {
    pub(crate) target: String,
    pub(crate) baseline: bool,
    pub(crate) rps: Vec<f64>,
    pub(crate) p50_us: Vec<f64>,
    pub(crate) p99_us: Vec<f64>,
    pub(crate) p999_us: Vec<f64>,
    /// Server CPU time per successful call, in microseconds.
    pub(crate) cpu_us_per_call: Vec<f64>,
    pub(crate) errors: u64,
    pub(crate) startup_ms: Vec<f64>,
    pub(crate) idle_rss_kib: Vec<f64>,
    pub(crate) loaded_rss_kib: Vec<f64>,
    pub(crate) shutdown_ms: Vec<f64>,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct GrpcReport {
    pub(crate) machine: Machine,
    pub(crate) command: String,
    /// Human description of the load.
    pub(crate) load: String,
    pub(crate) rounds: u32,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    /// Highest share (0–1) of the machine's CPU used by other processes while the servers idled.
    pub(crate) background_cpu: f64,
    pub(crate) rows: Vec<GrpcRow>,
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub(crate) fn run(args: &GrpcArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let load_before = load_average();
    let (baseline_exe, service_exe, loadgen) = if args.no_build {
        (
            super::prebuilt(&root, BASELINE, false)?,
            super::prebuilt(&root, SERVICE, false)?,
            super::prebuilt(&root, LOADGEN, false)?,
        )
    } else {
        let exes = super::release_build(
            &root,
            &["-p", "bench-servers", "--bin", BASELINE, "--bin", SERVICE, "-p", "xtask", "--bin", LOADGEN],
        )?;
        let exe = |name: &str| exes.get(name).cloned().with_context(|| format!("the build produced no `{name}`"));
        (exe(BASELINE)?, exe(SERVICE)?, exe(LOADGEN)?)
    };
    let targets = [
        Target { name: BASELINE, baseline: true, exe: baseline_exe },
        Target { name: SERVICE, baseline: false, exe: service_exe },
    ];
    let mut rows: Vec<GrpcRow> = targets
        .iter()
        .map(|t| GrpcRow { target: t.name.to_owned(), baseline: t.baseline, ..GrpcRow::default() })
        .collect();

    let mut background_cpu: f64 = 0.0;
    for round in 0..args.rounds {
        eprintln!("== round {}/{}", round + 1, args.rounds);
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        let work_dir = tempfile::Builder::new().prefix("xtask-bench-grpc-").tempdir()?;

        let mut running: Vec<Option<Running>> = vec![None, None];
        for &i in &order {
            let t = &targets[i];
            let mut r = t.start(&root, work_dir.path())?;
            let addr = r.grpc_addr.clone();
            let startup =
                r.server.wait_until(&format!("answering SayHello on {addr}"), READY_TIMEOUT, || probe(&addr))?;
            if !t.baseline {
                let (status, body) = r.server.get("/health/ready")?;
                if status != 200 {
                    bail!("{} answers SayHello but GET /health/ready is {status}: {body}", t.name);
                }
            }
            let before = CpuTimes::read();
            std::thread::sleep(IDLE_SETTLE);
            let idle = r.server.rss_kib()?;
            let busy = before.zip(CpuTimes::read()).and_then(|(b, a)| a.busy_since(&b)).unwrap_or(0.0);
            background_cpu = background_cpu.max(busy);
            eprintln!(
                "   {:<14} ready in {:.1} ms on {addr}, idle RSS {:.1} MiB (background CPU {:.0}%)",
                t.name,
                startup.as_secs_f64() * 1e3,
                idle as f64 / 1024.0,
                busy * 100.0
            );
            rows[i].startup_ms.push(startup.as_secs_f64() * 1e3);
            rows[i].idle_rss_kib.push(idle as f64);
            running[i] = Some(r);
        }

        for &i in &order {
            let r = running[i].as_ref().context("server not started")?;
            let m = measure(&loadgen, args, r)?;
            let result = &m.result;
            if result.errors > 0 && !args.allow_errors {
                bail!(
                    "{} calls to {} failed (first: {}).\nserver output ends with:\n{}\n\
                     Fix the server (or record the errors with --allow-errors).",
                    result.errors,
                    r.server.name,
                    result.first_error.as_deref().unwrap_or("?"),
                    r.server.output_tail()
                );
            }
            let cpu_us =
                if result.requests > 0 { m.server_cpu.as_secs_f64() * 1e6 / result.requests as f64 } else { 0.0 };
            eprintln!(
                "   {:<14} {:>9.0} req/s  p50 {:>9}  p99 {:>9}  server CPU {:.1} µs/call  loaded RSS {:.1} MiB{}{}",
                r.server.name,
                result.rps,
                fmt_latency(f64::from(result.p50_us)),
                fmt_latency(f64::from(result.p99_us)),
                cpu_us,
                m.loaded_rss_kib as f64 / 1024.0,
                if result.errors > 0 { format!("  {} errors", result.errors) } else { String::new() },
                if result.regrown { "  (latency buffer regrown)" } else { "" },
            );
            let row = &mut rows[i];
            row.rps.push(result.rps);
            row.p50_us.push(f64::from(result.p50_us));
            row.p99_us.push(f64::from(result.p99_us));
            row.p999_us.push(f64::from(result.p999_us));
            row.cpu_us_per_call.push(cpu_us);
            row.errors += result.errors;
            row.loaded_rss_kib.push(m.loaded_rss_kib as f64);
        }

        for &i in &order {
            let mut r = running[i].take().context("server not started")?;
            let took = r.server.terminate(SHUTDOWN_TIMEOUT)?;
            rows[i].shutdown_ms.push(took.as_secs_f64() * 1e3);
        }
    }

    if background_cpu > report::BUSY_WARNING {
        eprintln!(
            "warning: other processes used up to {:.0}% of the machine's CPU while the servers idled: \
             the numbers are noisy; rerun on a quiet machine",
            background_cpu * 100.0
        );
    }
    let report = GrpcReport {
        machine: Machine::describe(),
        command: command_line(),
        load: format!(
            "xtask's tonic client (release build, {} runtime thread{}) in its own process, {} calls in flight over {} \
             HTTP/2 connection{}, {} per run after a {} warm-up",
            args.client_threads,
            if args.client_threads == 1 { "" } else { "s" },
            args.concurrency,
            args.connections,
            if args.connections == 1 { "" } else { "s" },
            humantime::format_duration(args.duration),
            humantime::format_duration(args.warmup),
        ),
        rounds: args.rounds,
        load_before,
        load_after: load_average(),
        background_cpu,
        rows,
    };
    let markdown = report.render();
    println!("{markdown}");
    if let Some(path) = &args.write {
        super::write_section(&root, path, "grpc", &markdown)?;
    }
    Ok(())
}

/// One readiness probe. The runtime is dropped with it, which closes the probe's connection: a
/// connection left on an idle runtime would never answer the server's shutdown (the HTTP/2 GOAWAY
/// ping) and hold up its exit.
fn probe(addr: &str) -> bool {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(grpc_load::probe(addr, PROBE_TIMEOUT)),
        Err(_) => false,
    }
}

/// One measured load run against a target.
struct Measured {
    result: LoadResult,
    server_cpu: Duration,
    loaded_rss_kib: u64,
}

/// Runs the load generator against `r`, reading the server's CPU time and sampling its RSS from
/// the end of the warm-up to the end of the run.
fn measure(loadgen: &Path, args: &GrpcArgs, r: &Running) -> anyhow::Result<Measured> {
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    let mut child = Command::new(loadgen)
        .args(["bench", "grpc-load", "--addr", &r.grpc_addr])
        .args(["--duration", &secs(args.duration), "--warmup", &secs(args.warmup)])
        .args(["--concurrency", &args.concurrency.to_string(), "--connections", &args.connections.to_string()])
        .args(["--threads", &args.client_threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting the load generator ({})", loadgen.display()))?;
    let stdout = child.stdout.take().context("no load generator stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    let mut measuring = None;
    for line in lines.by_ref() {
        let line = line?;
        if line.trim() == MEASURING {
            measuring = Some((r.server.cpu_time()?, r.server.sample_rss()));
            break;
        }
        out.push_str(&line);
        out.push('\n');
    }
    for line in lines {
        out.push_str(&line?);
        out.push('\n');
    }
    let status = child.wait()?;
    let cpu_after = r.server.cpu_time()?;
    let Some((cpu_before, sampler)) = measuring else {
        bail!("the load generator ({status}) never started measuring against {}:\n{out}", r.server.name);
    };
    let loaded_rss_kib = sampler.finish();
    if !status.success() {
        bail!("the load generator failed ({status}) against {}:\n{out}", r.server.name);
    }
    let result = LoadResult::parse(&out)?;
    Ok(Measured { result, server_cpu: cpu_after.saturating_sub(cpu_before), loaded_rss_kib })
}

impl GrpcReport {
    fn baseline(&self) -> Option<&GrpcRow> {
        self.rows.iter().find(|r| r.baseline)
    }

    /// Renders the report as markdown (no markers).
    pub(crate) fn render(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.machine;
        let mut out = String::new();
        let rounds =
            if self.rounds == 1 { "1 round".to_owned() } else { format!("{} rounds, median shown", self.rounds) };
        let _ = writeln!(out, "### gRPC: MicroFramework (framework-grpc) vs bare tonic (baseline-tonic)\n");
        let _ = writeln!(out, "- Date: {}", m.date);
        let _ = writeln!(out, "- Machine: {}, {} cores, kernel {}", m.cpu, m.cores, m.kernel);
        let _ = writeln!(out, "- Toolchain: {}, `--release` profile of the workspace", m.rustc);
        let _ = writeln!(out, "- Load: {}; {rounds}", self.load);
        let _ = writeln!(
            out,
            "- Machine load: load average {} before, {} after (1/5/15 min); other processes used up to {:.0}% of \
             the CPU while the servers idled{}",
            self.load_before,
            self.load_after,
            self.background_cpu * 100.0,
            if self.background_cpu > report::BUSY_WARNING { " (busy machine: numbers are noisy)" } else { "" }
        );
        let _ = writeln!(out, "- Command: `{}`\n", self.command);

        let _ = writeln!(
            out,
            "| target | calls/s | spread | p50 | p99 | p99.9 | server CPU per call | calls/s vs baseline | \
             p99 vs baseline | errors |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let base = self.baseline();
        for row in &self.rows {
            let rps = median(&row.rps);
            let p99 = median(&row.p99_us);
            let (rps_ratio, p99_ratio) = match base {
                Some(b) if !row.baseline => (
                    ratio(rps, median(&b.rps)).map(|r| format!("{:.1}%", r * 100.0)),
                    ratio(p99, median(&b.p99_us)).map(|r| format!("{r:.2}×")),
                ),
                Some(_) => (Some("100%".to_owned()), Some("1.00×".to_owned())),
                None => (None, None),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.target,
                rps.map(|v| format!("{v:.0}")).unwrap_or_else(dash),
                spread(&row.rps),
                median(&row.p50_us).map(fmt_latency).unwrap_or_else(dash),
                p99.map(fmt_latency).unwrap_or_else(dash),
                median(&row.p999_us).map(fmt_latency).unwrap_or_else(dash),
                median(&row.cpu_us_per_call).map(|v| format!("{v:.1} µs")).unwrap_or_else(dash),
                rps_ratio.unwrap_or_else(dash),
                p99_ratio.unwrap_or_else(dash),
                row.errors,
            );
        }

        let _ = writeln!(
            out,
            "\n| target | start-up to first call (ms) | idle RSS (MiB) | loaded RSS (MiB) | SIGTERM to exit (ms) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for row in &self.rows {
            let mib = |v: &[f64]| median(v).map(|k| format!("{:.1}", k / 1024.0)).unwrap_or_else(dash);
            let ms = |v: &[f64]| median(v).map(|x| format!("{x:.1}")).unwrap_or_else(dash);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.target,
                ms(&row.startup_ms),
                mib(&row.idle_rss_kib),
                mib(&row.loaded_rss_kib),
                ms(&row.shutdown_ms),
            );
        }
        let _ = writeln!(
            out,
            "\n<sub>Unary `bench.v1.Greeter/SayHello` (`{{name: \"world\"}}` → `Hello, world!`, 30 s deadline sent \
             with each call). Latency is measured per call by the client (every call recorded, nearest-rank \
             percentiles; median over rounds); spread is (max − min) / median of calls/s across rounds. \
             framework-grpc serves the default stack (request id, trace span at info with JSON logs, RED \
             metrics, deadline, concurrency and size limits, health and reflection services) on its own gRPC \
             listener; baseline-tonic is `tonic::transport::Server` with the service alone. Server CPU per call \
             is the server's user + system time during the measured run divided by the calls. Start-up is \
             spawn → first successful `SayHello` (polled every 1 ms); idle RSS is VmRSS 1 s after that; loaded \
             RSS is the maximum VmRSS sampled every 100 ms under load. The load generator is a separate \
             process on the same cores as the server: on a 2-core machine they compete for the CPU, so \
             calls/s is a joint figure, and the ratio to the baseline is what to compare.</sub>"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_ratios_and_load() {
        let row = |target: &str, baseline: bool, rps: f64, p99: f64| GrpcRow {
            target: target.into(),
            baseline,
            rps: vec![rps * 0.9, rps, rps * 1.1],
            p50_us: vec![400.0; 3],
            p99_us: vec![p99; 3],
            p999_us: vec![3000.0; 3],
            cpu_us_per_call: vec![12.34; 3],
            errors: 0,
            startup_ms: vec![5.0],
            idle_rss_kib: vec![4096.0],
            loaded_rss_kib: vec![8192.0],
            shutdown_ms: vec![2.0],
        };
        let report = GrpcReport {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.0.0".into(),
                rustc: "rustc 1.95.0".into(),
                date: "Thu Jan  1 00:00:00 UTC 2026".into(),
            },
            command: "cargo xtask bench grpc".into(),
            load: "64 calls in flight".into(),
            rounds: 3,
            load_before: "1.00 2.00 3.00".into(),
            load_after: "4.00 5.00 6.00".into(),
            background_cpu: 0.5,
            rows: vec![row("baseline-tonic", true, 20_000.0, 1000.0), row("framework-grpc", false, 15_000.0, 1500.0)],
        };
        let md = report.render();
        assert!(
            md.contains("| baseline-tonic | 20000 | 20.0% | 400 µs | 1.00 ms | 3.00 ms | 12.3 µs | 100% | 1.00× | 0 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| framework-grpc | 15000 | 20.0% | 400 µs | 1.50 ms | 3.00 ms | 12.3 µs | 75.0% | 1.50× | 0 |"
            ),
            "{md}"
        );
        assert!(md.contains("| framework-grpc | 5.0 | 4.0 | 8.0 | 2.0 |"), "{md}");
        assert!(md.contains("load average 1.00 2.00 3.00 before, 4.00 5.00 6.00 after"), "{md}");
        assert!(md.contains("(busy machine: numbers are noisy)"), "{md}");
        assert!(md.contains("- Command: `cargo xtask bench grpc`"), "{md}");
    }
}
