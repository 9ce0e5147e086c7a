//! `cargo xtask bench grpc`: a bare tonic server (`baseline-tonic`, the `bench.v1.Greeter`
//! service alone) vs the same greeter on MicroFramework's default gRPC stack with production
//! logging (`framework-grpc`), both from the `bench-servers` package, and vs the service
//! `microframework new --type grpc` generates (`generated-grpc`, see [`super::grpc_generated`]),
//! loaded with its unary `Get`.
//!
//! The two servers, the CLI and a release build of xtask (for the load generator,
//! [`super::grpc_load`]) are built with one cargo invocation, then the generated service. Each
//! round starts every target (one after the other: start-up time to the first successful call,
//! idle RSS), then loads each in turn, the order rotating between rounds so slow drift of the
//! machine hits all alike; during each measured run the server's RSS is sampled and its CPU time
//! read. All are stopped with SIGTERM at the end of a round and must exit 0.
//!
//! The load generator runs on the same cores as the server (one runtime thread by default), like
//! wrk in `bench http`. Nothing is pinned.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::grpc_generated;
use super::grpc_load::{self, Call, LoadResult};
use super::proc::{CpuTimes, Launch, Server, free_port};
use super::report::{self, dash, fmt_latency, ratio, spread};
use super::{Machine, command_line, load_average, median};
use crate::workspace_root;

const BASELINE: &str = "baseline-tonic";
const SERVICE: &str = "framework-grpc";
const GENERATED: &str = "generated-grpc";
const CLI: &str = "microframework";
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
    /// Skip `cargo build --release` and use the binaries already in the target directory (the
    /// generated service is still generated and built, incrementally).
    #[arg(long)]
    no_build: bool,
    /// Leave out the generated service (`generated-grpc`): no generation, no build.
    #[arg(long)]
    no_generated: bool,
}

/// What a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `baseline-tonic`: bare tonic, port as its argument.
    Baseline,
    /// `framework-grpc`: the greeter on the framework, configured through `APP_*`.
    Framework,
    /// `generated-grpc`: the generated service, started in its directory, configured like
    /// `framework-grpc`.
    Generated,
}

/// One server under test.
struct Target {
    name: &'static str,
    kind: Kind,
    exe: PathBuf,
    /// The generated service's directory (its `configs/`).
    dir: Option<PathBuf>,
}

/// A started target: the process (whose `port` is the HTTP port for the framework), the gRPC
/// address and the call the load generator makes.
struct Running {
    server: Server,
    grpc_addr: String,
    call: Call,
}

impl Target {
    /// Starts the server; `work_dir` is the framework's working directory (its SQLite file).
    fn start(&self, root: &Path, work_dir: &Path) -> anyhow::Result<(Server, String)> {
        let grpc_port = free_port()?;
        let (launch, http_port) = if self.kind == Kind::Baseline {
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
                cwd: self.dir.clone().unwrap_or_else(|| work_dir.to_owned()),
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
        Ok((server, format!("http://127.0.0.1:{grpc_port}")))
    }

    /// The call that tells the target is up: `SayHello` for the greeters, a `SERVING` health
    /// check for the generated service.
    fn probe_call(&self) -> Call {
        match self.kind {
            Kind::Generated => grpc_generated::health_check(),
            Kind::Baseline | Kind::Framework => Call::greeter(),
        }
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
    let with_generated = !args.no_generated;
    let (exes, cli) = if args.no_build {
        let exes = [BASELINE, SERVICE, LOADGEN].map(|name| super::prebuilt(&root, name, false));
        let [baseline, service, loadgen] = exes;
        let cli = if with_generated { Some(super::prebuilt(&root, CLI, false)?) } else { None };
        ([baseline?, service?, loadgen?], cli)
    } else {
        let mut build_args =
            vec!["-p", "bench-servers", "--bin", BASELINE, "--bin", SERVICE, "-p", "xtask", "--bin", LOADGEN];
        if with_generated {
            build_args.extend(["-p", "microframework-cli", "--bin", CLI]);
        }
        let exes = super::release_build(&root, &build_args)?;
        let exe = |name: &str| exes.get(name).cloned().with_context(|| format!("the build produced no `{name}`"));
        let cli = if with_generated { Some(exe(CLI)?) } else { None };
        ([exe(BASELINE)?, exe(SERVICE)?, exe(LOADGEN)?], cli)
    };
    let [baseline_exe, service_exe, loadgen] = exes;
    let mut targets = vec![
        Target { name: BASELINE, kind: Kind::Baseline, exe: baseline_exe, dir: None },
        Target { name: SERVICE, kind: Kind::Framework, exe: service_exe, dir: None },
    ];
    if let Some(cli) = cli {
        let (exe, dir) = grpc_generated::prepare(&root, &cli)?;
        targets.push(Target { name: GENERATED, kind: Kind::Generated, exe, dir: Some(dir) });
    }
    let mut rows: Vec<GrpcRow> = targets
        .iter()
        .map(|t| GrpcRow { target: t.name.to_owned(), baseline: t.kind == Kind::Baseline, ..GrpcRow::default() })
        .collect();

    let mut background_cpu: f64 = 0.0;
    for round in 0..args.rounds {
        eprintln!("== round {}/{}", round + 1, args.rounds);
        // Rotate the order so that no target is always first (or last) to start and be loaded.
        let order: Vec<usize> = (0..targets.len()).map(|k| (k + round as usize) % targets.len()).collect();
        let work_dir = tempfile::Builder::new().prefix("xtask-bench-grpc-").tempdir()?;

        let mut running: Vec<Option<Running>> = targets.iter().map(|_| None).collect();
        for &i in &order {
            let t = &targets[i];
            let (mut server, addr) = t.start(&root, work_dir.path())?;
            let probe_call = t.probe_call();
            let what = format!("answering {} on {addr}", probe_call.path);
            let startup = server.wait_until(&what, READY_TIMEOUT, || probe(&addr, &probe_call))?;
            if t.kind != Kind::Baseline {
                let (status, body) = server.get("/health/ready")?;
                if status != 200 {
                    bail!("{} answers {} but GET /health/ready is {status}: {body}", t.name, probe_call.path);
                }
            }
            let call = match t.kind {
                Kind::Generated => block_on(grpc_generated::seed(&addr))
                    .and_then(|r| r)
                    .with_context(|| format!("seeding {}; its output ends with:\n{}", t.name, server.output_tail()))?,
                Kind::Baseline | Kind::Framework => Call::greeter(),
            };
            let r = Running { server, grpc_addr: addr.clone(), call };
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

/// Runs `fut` on a runtime of its own. The runtime is dropped with it, which closes the
/// connections `fut` opened: a connection left on an idle runtime would never answer the
/// server's shutdown (the HTTP/2 GOAWAY ping) and hold up its exit.
fn block_on<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    Ok(rt.block_on(fut))
}

/// One readiness probe: `call` on a fresh connection gets its expected reply.
fn probe(addr: &str, call: &Call) -> bool {
    block_on(grpc_load::probe(addr, call, PROBE_TIMEOUT)).unwrap_or(false)
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
        .args(r.call.args())
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
        let generated = self.rows.iter().any(|r| r.target == GENERATED);
        let _ = writeln!(
            out,
            "### gRPC: MicroFramework ({}) vs bare tonic (baseline-tonic)\n",
            if generated { "framework-grpc, generated-grpc" } else { "framework-grpc" }
        );
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

        report::write_process_table(
            &mut out,
            "start-up to first call",
            self.rows.iter().map(|r| report::ProcessSamples {
                target: &r.target,
                startup_ms: &r.startup_ms,
                idle_rss_kib: &r.idle_rss_kib,
                loaded_rss_kib: &r.loaded_rss_kib,
                shutdown_ms: &r.shutdown_ms,
            }),
        );
        let generated_note = if generated {
            " generated-grpc is `microframework new bench-grpc --type grpc --with-database=none \
             --with-auth=none` as generated, built in release: it is loaded with its unary \
             `bench_grpc.v1.Users/Get` of one user (created once after start-up, kept in memory), whose \
             handler validates the id, reads the user through the service and repository layers and \
             converts it to the protobuf message; the reply (about 110 bytes) is checked byte for byte."
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\n<sub>baseline-tonic and framework-grpc serve the unary `bench.v1.Greeter/SayHello` (`{{name: \
             \"world\"}}` → `Hello, world!`).{generated_note} A 30 s deadline is sent with each call. Latency is \
             measured per call by the client (every call recorded, nearest-rank percentiles; median over rounds); spread is (max − min) / median of calls/s across rounds. \
             The framework targets serve the default stack (request id, trace span at info with JSON logs, RED \
             metrics, deadline, concurrency and size limits, health and reflection services) on its own gRPC \
             listener; baseline-tonic is `tonic::transport::Server` with the service alone. Server CPU per call \
             is the server's user + system time during the measured run divided by the calls. Start-up is \
             spawn → first successful `SayHello` (generated-grpc: first `SERVING` answer of \
             `grpc.health.v1.Health/Check`), polled every 1 ms; idle RSS is VmRSS 1 s after that; loaded \
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
            rows: vec![
                row("baseline-tonic", true, 20_000.0, 1000.0),
                row("framework-grpc", false, 15_000.0, 1500.0),
                row("generated-grpc", false, 10_000.0, 2000.0),
            ],
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
        assert!(
            md.contains(
                "| generated-grpc | 10000 | 20.0% | 400 µs | 2.00 ms | 3.00 ms | 12.3 µs | 50.0% | 2.00× | 0 |"
            ),
            "{md}"
        );
        assert!(md.contains("| framework-grpc | 5.0 | 4.0 | 8.0 | 2.0 |"), "{md}");
        assert!(md.contains("(framework-grpc, generated-grpc) vs bare tonic"), "{md}");
        assert!(md.contains("bench_grpc.v1.Users/Get"), "{md}");
        assert!(md.contains("load average 1.00 2.00 3.00 before, 4.00 5.00 6.00 after"), "{md}");
        assert!(md.contains("(busy machine: numbers are noisy)"), "{md}");
        assert!(md.contains("- Command: `cargo xtask bench grpc`"), "{md}");
    }
}
