//! `cargo xtask bench http`: the same routes on MicroFramework (full default middleware) vs a
//! bare axum server, both from the `bench-servers` package.
//!
//! Both are built in release, then each round starts both (one after the other: start-up time and
//! idle RSS), warms them up, and loads each route with wrk, alternating targets
//! (`baseline /hello, service /hello, baseline /hello/json, …`; the first target alternates
//! between rounds) so slow drift of the machine hits both alike. Both are stopped with SIGTERM at
//! the end of a round and must exit 0.
//!
//! wrk runs with one thread by default: on small machines (CI has 2 cores) the load generator and
//! the server share the CPU, and one wrk thread leaves the server the most of it. Nothing is pinned.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::proc::{CpuTimes, Launch, Server, free_port};
use super::report::{self, HttpReport, LoadRow, ProcRow};
use super::wrk::{Load, Wrk};
use super::{Machine, command_line};
use crate::workspace_root;

const BASELINE: &str = "baseline-axum";
const SERVICE: &str = "framework-hello";
const READY_PATH: &str = "/health/ready";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_SETTLE: Duration = Duration::from_secs(1);

/// Options of `cargo xtask bench http`.
#[derive(Debug, Args)]
pub(crate) struct HttpArgs {
    /// Length of each measured wrk run (whole seconds, e.g. 10s or 1m).
    #[arg(long, default_value = "10s", value_parser = parse_secs)]
    duration: Duration,
    /// Length of the warm-up run per target and route before each round's measurements.
    #[arg(long, default_value = "2s", value_parser = parse_secs)]
    warmup: Duration,
    /// Open connections (wrk -c).
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads (wrk -t). 1 by default so the server gets most of a small machine's CPU.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Rounds to run; the report shows the median of each number.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Route to load (repeatable).
    #[arg(long = "route", value_name = "PATH", default_values_t = [String::from("/hello"), String::from("/hello/json")])]
    routes: Vec<String>,
    /// Also write the report between `<!-- bench:http:start -->` and `<!-- bench:http:end -->`
    /// in this markdown file (relative paths are from the workspace root; created if absent).
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
    /// Print PASS/MISS against the targets (≥ 90% of baseline req/s, p99 ≤ 1.2× baseline on /hello).
    /// Informative only: a miss does not fail the command.
    #[arg(long)]
    check_target: bool,
    /// Record wrk errors (socket errors, non-2xx responses) in the report instead of failing.
    #[arg(long)]
    allow_errors: bool,
    /// Skip `cargo build --release` and use the binaries already in the target directory.
    #[arg(long)]
    no_build: bool,
    /// The wrk executable.
    #[arg(long, env = "WRK", default_value = "wrk")]
    wrk: PathBuf,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (expected e.g. 10s)"))?;
    if d.as_secs() == 0 || d.subsec_nanos() != 0 {
        return Err(format!("`{s}`: wrk takes whole seconds, at least 1s"));
    }
    Ok(d)
}

/// One binary under test.
struct Target {
    name: &'static str,
    baseline: bool,
    exe: PathBuf,
}

impl Target {
    /// How to start it on `port`; `db_dir` holds the service's SQLite file.
    fn launch(&self, root: &Path, port: u16, db_dir: &Path) -> Launch {
        if self.baseline {
            return Launch {
                name: self.name.to_owned(),
                program: self.exe.clone(),
                args: vec![port.to_string()],
                cwd: root.to_owned(),
                env: Vec::new(),
                clear_env_prefixes: Vec::new(),
            };
        }
        Launch {
            name: self.name.to_owned(),
            program: self.exe.clone(),
            args: Vec::new(),
            cwd: db_dir.to_owned(),
            env: [
                ("APP_SERVER__HOST", "127.0.0.1".to_owned()),
                ("APP_SERVER__PORT", port.to_string()),
                // Production logging: JSON at info, so every request gets its trace span (the
                // access log stays off, as it is by default).
                ("APP_LOGGING__LEVEL", "info".to_owned()),
                ("APP_LOGGING__FORMAT", "json".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            // The caller's APP_* and RUST_LOG (which overrides the log level) must not change what is measured.
            clear_env_prefixes: vec!["APP_".to_owned(), "RUST_LOG".to_owned()],
        }
    }
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub(crate) fn run(args: &HttpArgs) -> anyhow::Result<()> {
    if args.connections < args.threads {
        bail!("--connections ({}) must be at least --threads ({})", args.connections, args.threads);
    }
    let wrk = Wrk::locate(&args.wrk)?;
    let root = workspace_root();
    let exes = if args.no_build { prebuilt(&root)? } else { build(&root)? };
    let exe =
        |name: &str| exes.get(name).cloned().with_context(|| format!("the build produced no `{name}` executable"));
    let targets = [
        Target { name: BASELINE, baseline: true, exe: exe(BASELINE)? },
        Target { name: SERVICE, baseline: false, exe: exe(SERVICE)? },
    ];
    let load = Load { threads: args.threads, connections: args.connections, duration: args.duration };
    let warmup = Load { duration: args.warmup, ..load };

    let mut load_rows: Vec<LoadRow> = args
        .routes
        .iter()
        .flat_map(|route| {
            targets.iter().map(move |t| LoadRow {
                target: t.name.to_owned(),
                route: route.clone(),
                baseline: t.baseline,
                ..LoadRow::default()
            })
        })
        .collect();
    let mut proc_rows: Vec<ProcRow> =
        targets.iter().map(|t| ProcRow { target: t.name.to_owned(), ..ProcRow::default() }).collect();

    let mut background_cpu: f64 = 0.0;
    for round in 0..args.rounds {
        eprintln!("== round {}/{}", round + 1, args.rounds);
        // Alternate which target goes first, so neither always runs on a "fresher" machine.
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        let db_dir = tempfile::Builder::new().prefix("xtask-bench-http-").tempdir()?;

        let mut servers: Vec<Option<Server>> = vec![None, None];
        for &i in &order {
            let t = &targets[i];
            let port = free_port()?;
            let launch = t.launch(&root, port, db_dir.path());
            let mut server = Server::spawn(&launch, port)?;
            let startup = server.wait_ready(READY_PATH, READY_TIMEOUT)?;
            let before = CpuTimes::read();
            std::thread::sleep(IDLE_SETTLE);
            let idle = server.rss_kib()?;
            // With the servers idle, any CPU use is someone else's: noise for the measurements.
            let busy = before.zip(CpuTimes::read()).and_then(|(b, a)| a.busy_since(&b)).unwrap_or(0.0);
            background_cpu = background_cpu.max(busy);
            eprintln!(
                "   {:<14} ready in {:.1} ms on port {port}, idle RSS {:.1} MiB (background CPU {:.0}%)",
                t.name,
                startup.as_secs_f64() * 1e3,
                idle as f64 / 1024.0,
                busy * 100.0
            );
            proc_rows[i].startup_ms.push(startup.as_secs_f64() * 1e3);
            proc_rows[i].idle_rss_kib.push(idle as f64);
            for route in &args.routes {
                let (status, body) = server.get(route)?;
                if status != 200 {
                    bail!(
                        "{} answers {status} to GET {route} (expected 200): add the route to the service or \
                         choose routes with --route; body: {}",
                        t.name,
                        body.chars().take(200).collect::<String>()
                    );
                }
            }
            servers[i] = Some(server);
        }

        for &i in &order {
            let server = servers[i].as_ref().context("server not started")?;
            for route in &args.routes {
                let (result, raw) = wrk.run(&server.url(route), warmup)?;
                check_errors(args, server, route, &result, &raw, "warm-up")?;
            }
        }

        let mut loaded_max = [0u64; 2];
        for (r, route) in args.routes.iter().enumerate() {
            for &i in &order {
                let server = servers[i].as_ref().context("server not started")?;
                let sampler = server.sample_rss();
                let run = wrk.run(&server.url(route), load);
                let rss = sampler.finish();
                let (result, raw) = run?;
                check_errors(args, server, route, &result, &raw, "measured run")?;
                loaded_max[i] = loaded_max[i].max(rss);
                eprintln!(
                    "   {:<14} {:<12} {:>9.0} req/s  p50 {:>9}  p99 {:>9}  {}",
                    server.name,
                    route,
                    result.requests_per_sec,
                    report::fmt_latency(result.p50_us),
                    report::fmt_latency(result.p99_us),
                    result.describe_errors()
                );
                let row = &mut load_rows[r * targets.len() + i];
                row.rps.push(result.requests_per_sec);
                row.p50_us.push(result.p50_us);
                row.p99_us.push(result.p99_us);
                row.errors += result.errors();
            }
        }

        for &i in &order {
            proc_rows[i].loaded_rss_kib.push(loaded_max[i] as f64);
            let mut server = servers[i].take().context("server not started")?;
            let took = server.terminate(SHUTDOWN_TIMEOUT)?;
            proc_rows[i].shutdown_ms.push(took.as_secs_f64() * 1e3);
        }
    }

    if background_cpu > report::BUSY_WARNING {
        eprintln!(
            "warning: other processes used up to {:.0}% of the machine's CPU while the servers idled: \
             the numbers are noisy; rerun on a quiet machine",
            background_cpu * 100.0
        );
    }
    let check_route = args
        .check_target
        .then(|| args.routes.iter().find(|r| r.as_str() == "/hello").unwrap_or(&args.routes[0]).clone());
    let report = HttpReport {
        machine: Machine::describe(),
        wrk_version: wrk.version.clone(),
        command: command_line(),
        load: format!(
            "{} wrk thread{}, {} connections, {} s per run after a {} s warm-up per route",
            args.threads,
            if args.threads == 1 { "" } else { "s" },
            args.connections,
            args.duration.as_secs(),
            args.warmup.as_secs()
        ),
        rounds: args.rounds,
        background_cpu,
        load_rows,
        proc_rows,
        check_route,
    };
    let markdown = report.render();
    println!("{markdown}");

    if let Some(path) = &args.write {
        super::write_section(&root, path, "http", &markdown)?;
    }
    Ok(())
}

fn check_errors(
    args: &HttpArgs,
    server: &Server,
    route: &str,
    result: &super::wrk::WrkResult,
    raw: &str,
    phase: &str,
) -> anyhow::Result<()> {
    if result.errors() == 0 || args.allow_errors {
        return Ok(());
    }
    bail!(
        "wrk reported errors against {} GET {route} ({phase}): {}.\nwrk output:\n{raw}\nserver output ends with:\n{}\n\
         Fix the server (or record the errors with --allow-errors).",
        server.name,
        result.describe_errors(),
        server.output_tail()
    )
}

/// Builds both binaries in release with one cargo invocation and returns their paths by name.
fn build(root: &Path) -> anyhow::Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = [
        "build",
        "--release",
        "-p",
        "bench-servers",
        "--bin",
        BASELINE,
        "--bin",
        SERVICE,
        "--message-format=json-render-diagnostics",
    ];
    eprintln!("== cargo {}", args[..args.len() - 1].join(" "));
    let out = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("`cargo build --release` failed ({}); see the errors above", out.status);
    }
    let mut exes = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) {
            exes.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    Ok(exes)
}

/// The release binaries already in the target directory (`--no-build`).
fn prebuilt(root: &Path) -> anyhow::Result<HashMap<String, PathBuf>> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let target_dir = if target_dir.is_absolute() { target_dir } else { root.join(target_dir) };
    let mut exes = HashMap::new();
    for name in [BASELINE, SERVICE] {
        let exe = target_dir.join("release").join(name);
        if !exe.is_file() {
            bail!("{} is missing: run without --no-build", exe.display());
        }
        exes.insert(name.to_owned(), exe);
    }
    Ok(exes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_seconds() {
        assert_eq!(parse_secs("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_secs("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_secs("0s").is_err());
        assert!(parse_secs("1500ms").is_err());
        assert!(parse_secs("ten").is_err());
    }
}
