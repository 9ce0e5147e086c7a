//! `cargo xtask bench size`: what a default generated service costs to ship and to run. The
//! service is `microframework new bench-size` (REST on SQLite, no auth: the README's run command)
//! built in release with its own generated `[profile.release]`, next to bare axum
//! (`baseline-axum`) as the reference in the same run:
//!
//! - the release binary's size as built and `strip`ped;
//! - start-up to ready: from spawning the process until `GET /health/ready` answers 200, polled
//!   every millisecond from outside (the median of `--runs` starts; the first creates the
//!   SQLite database, the others open it);
//! - idle RSS one second after ready, and the largest RSS during `--load` of keep-alive
//!   `GET /users/{id}` (one SQLite read, the whole default middleware) and right after it.
//!
//! The service runs in its production configuration (`APP_ENV=prod`: JSON logs at info, rate
//! limits on) with the per-client limit raised so the load is served rather than refused.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::proc::{Launch, Server, free_port};
use super::{Machine, command_line, median};
use crate::workspace_root;

/// The generated service's name (and binary).
const NAME: &str = "bench-size";
/// The longest a start may take before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `cargo xtask bench size`.
#[derive(Debug, Args)]
pub(crate) struct SizeArgs {
    /// How many starts to time (and idle RSS readings to take) per binary.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// How long to load the service before reading the loaded RSS.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    load: Duration,
    /// Keep-alive connections during the load.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Replace the `size` section of this markdown file (relative to the workspace root).
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

/// One binary's measurements.
#[derive(Debug, Default)]
struct Measured {
    size: u64,
    stripped: Option<u64>,
    startup_ms: Vec<f64>,
    idle_rss_kib: Vec<f64>,
    idle_anon_kib: Vec<f64>,
    peak_loaded_rss_kib: Option<u64>,
    after_load_rss_kib: Option<u64>,
    after_load_anon_kib: Option<u64>,
    load: Option<LoadResult>,
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub(crate) fn run(args: &SizeArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let cli = super::generator::build_cli(&root)?;
    let (service_exe, service_dir) = super::generate_release(&root, &cli, "xtask-bench-size", NAME, &[])?;
    let baseline_exe = super::release_build(&root, &["-p", "bench-servers", "--bin", "baseline-axum"])?
        .remove("baseline-axum")
        .context("the build produced no `baseline-axum`")?;
    let scratch = tempfile::Builder::new().prefix("xtask-bench-size-").tempdir()?;

    let mut service = measure_files(&service_exe, scratch.path())?;
    let mut baseline = measure_files(&baseline_exe, scratch.path())?;

    let data = scratch.path().join("service");
    std::fs::create_dir_all(&data)?;
    copy_configs(&service_dir, &data)?;
    for round in 0..args.runs.max(1) {
        // Alternate which one starts first, so neither always gets the warmer machine.
        for first in [round % 2 == 0, round % 2 != 0] {
            if first {
                let (port, admin) = two_ports()?;
                start_idle(&service_launch(&service_exe, &data, port, admin), port, &mut service)?;
            } else {
                let port = free_port()?;
                start_idle(&baseline_launch(&baseline_exe, &root, port), port, &mut baseline)?;
            }
        }
    }

    eprintln!("== {} under load for {:?} ({} connections)", NAME, args.load, args.connections);
    let (port, admin) = two_ports()?;
    let mut server = Server::spawn(&service_launch(&service_exe, &data, port, admin), port)?;
    server.wait_ready("/health/ready", READY_TIMEOUT)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let path = seed(addr)?;
    let sampler = server.sample_rss();
    let load = keep_alive_load(addr, &path, args.connections, args.load)?;
    service.peak_loaded_rss_kib = Some(sampler.finish());
    service.after_load_rss_kib = Some(server.rss_kib()?);
    service.after_load_anon_kib = Some(super::proc::anon_rss_kib(server.pid())?);
    eprintln!("   {} requests ({:.0}/s), {} not 200", load.requests, load.per_second(), load.failures);
    if load.failures > 0 {
        bail!(
            "{} of {} requests were not answered 200; the output ends with:\n{}",
            load.failures,
            load.requests,
            server.output_tail()
        );
    }
    service.load = Some(load);
    drop(server);

    let md = render(args, &path, &service, &baseline);
    println!("{md}");
    if let Some(file) = &args.write {
        super::write_section(&root, file, "size", &md)?;
    }
    Ok(())
}

/// The binary's size, and its size after `strip` of a copy (`None` without `strip`).
fn measure_files(exe: &Path, scratch: &Path) -> anyhow::Result<Measured> {
    let size = std::fs::metadata(exe).with_context(|| format!("reading {}", exe.display()))?.len();
    Ok(Measured { size, stripped: super::stripped_size(exe, scratch), ..Measured::default() })
}

fn copy_configs(service_dir: &Path, data: &Path) -> anyhow::Result<()> {
    let configs = data.join("configs");
    std::fs::create_dir_all(&configs)?;
    for entry in std::fs::read_dir(service_dir.join("configs"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), configs.join(entry.file_name()))?;
    }
    Ok(())
}

/// The generated service in its production configuration, on `port` (admin listener on
/// `admin_port`), working directory `data` (its `configs/` and the SQLite file).
fn service_launch(exe: &Path, data: &Path, port: u16, admin_port: u16) -> Launch {
    let env = [
        ("APP_ENV", "prod".to_owned()),
        ("APP_SERVER__HOST", "127.0.0.1".to_owned()),
        ("APP_SERVER__PORT", port.to_string()),
        ("APP_SERVER__ADMIN_PORT", admin_port.to_string()),
        // The limiter stays in the path; one client's load must not be refused.
        ("APP_HTTP__RATE_LIMIT__PER_IP__REQUESTS_PER_SECOND", "1000000000".to_owned()),
        ("APP_HTTP__RATE_LIMIT__PER_IP__BURST", "1000000000".to_owned()),
    ];
    Launch {
        name: NAME.to_owned(),
        program: exe.to_owned(),
        args: Vec::new(),
        cwd: data.to_owned(),
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        // The caller's APP_*, DATABASE_URL and RUST_LOG must not change what is measured.
        clear_env_prefixes: vec!["APP_".to_owned(), "RUST_LOG".to_owned(), "DATABASE_URL".to_owned()],
    }
}

fn baseline_launch(exe: &Path, root: &Path, port: u16) -> Launch {
    Launch {
        name: "baseline-axum".to_owned(),
        program: exe.to_owned(),
        args: vec![port.to_string()],
        cwd: root.to_owned(),
        env: Vec::new(),
        clear_env_prefixes: Vec::new(),
    }
}

/// Two different free ports (the service's and its admin listener's).
fn two_ports() -> anyhow::Result<(u16, u16)> {
    let port = free_port()?;
    loop {
        let admin = free_port()?;
        if admin != port {
            return Ok((port, admin));
        }
    }
}

/// Starts the process on `port`, times it to ready (`GET /health/ready` answers 200), reads its
/// RSS one second later, and kills it.
fn start_idle(launch: &Launch, port: u16, into: &mut Measured) -> anyhow::Result<()> {
    let mut server = Server::spawn(launch, port)?;
    let ready = server.wait_ready("/health/ready", READY_TIMEOUT)?;
    std::thread::sleep(Duration::from_secs(1));
    let rss = server.rss_kib()?;
    let anon = super::proc::anon_rss_kib(server.pid())?;
    eprintln!(
        "   {}: ready in {:.1} ms, idle RSS {:.1} MiB ({:.1} MiB anonymous)",
        launch.name,
        ms(ready),
        rss as f64 / 1024.0,
        anon as f64 / 1024.0
    );
    into.startup_ms.push(ms(ready));
    into.idle_rss_kib.push(rss as f64);
    into.idle_anon_kib.push(anon as f64);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Creates the user the load reads and returns its path (`/users/{id}`).
fn seed(addr: SocketAddr) -> anyhow::Result<String> {
    let mut conn = Connection::open(addr)?;
    let (status, body) = conn.request("POST", "/users", Some(r#"{"name":"bench user"}"#))?;
    if status != 201 && status != 200 {
        bail!("POST /users answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let user: serde_json::Value = serde_json::from_slice(&body).context("POST /users did not answer JSON")?;
    let id = match &user["id"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => bail!("POST /users answered no id: {other}"),
    };
    let path = format!("/users/{id}");
    let (status, _) = conn.request("GET", &path, None)?;
    if status != 200 {
        bail!("GET {path} answered {status} right after the user was created");
    }
    Ok(path)
}

/// What a load run did.
#[derive(Debug, Clone, Copy)]
struct LoadResult {
    requests: u64,
    failures: u64,
    elapsed: Duration,
}

impl LoadResult {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// `connections` threads, each sending `GET path` on one keep-alive connection as fast as the
/// answers come, for `duration`.
fn keep_alive_load(addr: SocketAddr, path: &str, connections: usize, duration: Duration) -> anyhow::Result<LoadResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (stop, requests, failures, path) = (stop.clone(), requests.clone(), failures.clone(), path.to_owned());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = Connection::open(addr)?;
                while !stop.load(Ordering::Relaxed) {
                    let (status, _) = conn.request("GET", &path, None)?;
                    requests.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for worker in workers {
        worker.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
    }
    Ok(LoadResult { requests: requests.load(Ordering::Relaxed), failures: failures.load(Ordering::Relaxed), elapsed })
}

/// One HTTP/1.1 keep-alive connection; responses must carry `Content-Length` (the generated
/// service's JSON responses do).
struct Connection {
    reader: BufReader<TcpStream>,
    host: SocketAddr,
}

impl Connection {
    fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self { reader: BufReader::new(stream), host: addr })
    }

    fn request(&mut self, method: &str, path: &str, json: Option<&str>) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(body) = json {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        head.push_str(json.unwrap_or_default());
        self.reader.get_mut().write_all(head.as_bytes()).with_context(|| format!("sending {method} {path}"))?;
        read_response(&mut self.reader).with_context(|| format!("reading the answer to {method} {path}"))
    }
}

/// Reads one response with a `Content-Length` body: its status and body.
fn read_response(reader: &mut impl BufRead) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP status line: {line:?}"))?;
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the connection closed inside the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse::<usize>().with_context(|| format!("bad Content-Length: {value:?}"))?);
        }
    }
    let length = length.context("a response without Content-Length")?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((status, body))
}

fn render(args: &SizeArgs, path: &str, service: &Measured, baseline: &Measured) -> String {
    use std::fmt::Write as _;
    let machine = Machine::describe();
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    let kib_mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    let med_ms = |v: &[f64]| median(v).map_or_else(super::report::dash, |x| format!("{x:.1} ms"));
    let med_rss = |v: &[f64]| median(v).map_or_else(super::report::dash, |k| format!("{:.1} MiB", k / 1024.0));
    let spread_ms = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if v.is_empty() { String::new() } else { format!(" ({min:.1}–{max:.1})") }
    };
    let mut md = String::new();
    let _ = writeln!(md, "### Size, memory and start-up of a generated service (`bench size`)\n");
    let _ = writeln!(
        md,
        "{} · {} cores · kernel {} · {} · {} · load average before: {}\n",
        machine.cpu,
        machine.cores,
        machine.kernel,
        machine.rustc,
        machine.date,
        super::load_average()
    );
    let _ = writeln!(
        md,
        "Command: `{}`. `{NAME}` is `microframework new {NAME}` (REST, SQLite, no auth), built with its \
         generated `[profile.release]`; `baseline-axum` is the bare axum hello-world (workspace release \
         profile). Start-up is spawn to the first 200 from `/health/ready` (axum's answers a constant 200), \
         polled every millisecond from outside, median (min–max) of {} starts; idle RSS is read one second after ready. The \
         service runs with `APP_ENV=prod` and its per-client rate limit raised; the load is {} keep-alive \
         connections sending `GET {path}` (an SQLite read) for {:?}.\n",
        command_line(),
        service.startup_ms.len(),
        args.connections,
        args.load,
    );
    let _ = writeln!(md, "| measure | {NAME} | baseline-axum | target |\n|---|---:|---:|---:|");
    let _ = writeln!(md, "| release binary as built | {} | {} | |", mib(service.size), mib(baseline.size));
    let stripped = |m: &Measured| m.stripped.map_or_else(super::report::dash, mib);
    let _ = writeln!(md, "| release binary, stripped | {} | {} | < 15 MB |", stripped(service), stripped(baseline));
    let _ = writeln!(
        md,
        "| start-up to ready | {}{} | {}{} | < 15 ms |",
        med_ms(&service.startup_ms),
        spread_ms(&service.startup_ms),
        med_ms(&baseline.startup_ms),
        spread_ms(&baseline.startup_ms)
    );
    let _ = writeln!(
        md,
        "| idle RSS after start-up | {} | {} | < 8 MB |",
        med_rss(&service.idle_rss_kib),
        med_rss(&baseline.idle_rss_kib)
    );
    let _ = writeln!(
        md,
        "| of which anonymous (heap, stacks; the rest is the mapped executable and libc) | {} | {} | |",
        med_rss(&service.idle_anon_kib),
        med_rss(&baseline.idle_anon_kib)
    );
    if let (Some(peak), Some(after), Some(anon), Some(load)) =
        (service.peak_loaded_rss_kib, service.after_load_rss_kib, service.after_load_anon_kib, service.load)
    {
        let _ = writeln!(md, "| largest RSS during the load | {} | | < 16 MB |", kib_mib(peak));
        let _ = writeln!(md, "| RSS right after the load | {} ({} anonymous) | | |", kib_mib(after), kib_mib(anon));
        let _ =
            writeln!(md, "| requests served during the load | {} ({:.0}/s) | | |", load.requests, load.per_second());
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_responses_with_a_length() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let mut reader = BufReader::new(&wire[..]);
        assert_eq!(read_response(&mut reader).unwrap(), (200, b"{}".to_vec()));
        assert_eq!(read_response(&mut reader).unwrap(), (404, Vec::new()));
        assert!(read_response(&mut reader).is_err());
    }

    #[test]
    fn refuses_responses_without_a_length() {
        let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(read_response(&mut BufReader::new(&wire[..])).is_err());
        assert!(read_response(&mut BufReader::new(&b"garbage\r\n\r\n"[..])).is_err());
    }
}
