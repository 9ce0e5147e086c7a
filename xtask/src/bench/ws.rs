//! `cargo xtask bench ws`: WebSocket fan-out of microframework-ws's hub (its `fanout` example: a
//! real `Service` with the WebSocket router) vs a bare tokio-tungstenite broadcast server
//! (`baseline-ws` in `bench-servers`).
//!
//! Both programs are built in release with one cargo invocation. Each runs a server and a client
//! process (the `fanout` executable with `--role clients`, the same for both), connects N clients,
//! broadcasts M messages of the given size to all of them with at most half a send queue in
//! flight, and prints one JSON line: delivered messages per second and the growth of the server's
//! resident memory per (idle) connection. Each round runs every (clients, size) case for both
//! programs, the first alternating between cases and rounds; the report shows medians.
//!
//! The baseline shows what the hub costs over the least a server needs for the same guarantees
//! (a bounded queue per connection drained by its own task in batches, a broadcast that never
//! waits, the message serialised once).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use super::proc::{CpuTimes, run_captured};
use super::report::{self, dash, ratio, spread};
use super::{Machine, command_line, load_average, median};
use crate::workspace_root;

const FANOUT: &str = "fanout";
const BASELINE: &str = "baseline-ws";
/// Fewest broadcasts per run, however many clients.
const MIN_MESSAGES: u64 = 20;
/// File descriptors each process needs beyond one per client.
const FD_HEADROOM: u64 = 256;

/// Options of `cargo xtask bench ws`.
#[derive(Debug, Args)]
pub(crate) struct WsArgs {
    /// Connected clients (comma-separated or repeated).
    #[arg(long = "clients", value_delimiter = ',', default_values_t = [100u64, 1000, 5000])]
    clients: Vec<u64>,
    /// Message sizes in bytes (comma-separated or repeated); each message is a JSON envelope
    /// padded to this size.
    #[arg(long = "size", value_delimiter = ',', default_values_t = [128u64, 1024])]
    sizes: Vec<u64>,
    /// Messages to deliver per run (clients × broadcasts): the broadcast count is this divided by
    /// the clients (at least 20), so every case takes a similar time.
    #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    deliveries: u64,
    /// Rounds to run; the report shows the median of each number.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Only run the framework's `fanout`, not the tokio-tungstenite baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Longest a single run may take before it is killed.
    #[arg(long, default_value = "5m", value_parser = super::grpc_load::parse_duration)]
    run_timeout: Duration,
    /// Also write the report between `<!-- bench:ws:start -->` and `<!-- bench:ws:end -->` in
    /// this markdown file (relative paths are from the workspace root; created if absent).
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
    /// Skip `cargo build --release` and use the executables already in the target directory.
    #[arg(long)]
    no_build: bool,
}

/// The JSON line `fanout` and `baseline-ws` print.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct FanoutResult {
    pub(crate) clients: u64,
    pub(crate) messages: u64,
    /// The actual message length in bytes.
    pub(crate) size: u64,
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) msgs_per_sec: f64,
    pub(crate) mib_per_sec: f64,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    pub(crate) rss_per_conn_kib: f64,
    pub(crate) rss_peak_kib: u64,
    pub(crate) connect_s: f64,
}

impl FanoutResult {
    /// Parses the last JSON line of the program's stdout.
    pub(crate) fn parse(stdout: &str) -> anyhow::Result<Self> {
        super::parse_last_json_line(stdout, "the fan-out program")
    }

    /// Messages that were queued for a client but not delivered (dropped, or missing from
    /// `delivered`).
    pub(crate) fn lost(&self) -> u64 {
        let expected = self.clients * self.messages;
        self.dropped + expected.saturating_sub(self.delivered)
    }
}

/// Broadcasts per run for `clients`.
pub(crate) fn messages_for(deliveries: u64, clients: u64) -> u64 {
    (deliveries / clients.max(1)).max(MIN_MESSAGES)
}

/// The soft and hard limits on open files, from a `/proc/<pid>/limits` text.
fn parse_open_files_limit(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| match v {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    });
    Some((values.next()??, values.next()??))
}

/// How to start a program that needs `fds` open files: directly, or through `sh` raising the soft
/// limit (up to the hard one).
fn command_with_fds(program: &Path, fds: u64) -> anyhow::Result<Command> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| parse_open_files_limit(&l));
    match limits {
        Some((soft, _)) if soft >= fds => Ok(Command::new(program)),
        Some((_, hard)) if hard >= fds => {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &format!("ulimit -n {fds} && exec \"$0\" \"$@\"")]).arg(program);
            Ok(cmd)
        }
        Some((soft, hard)) => bail!(
            "{fds} open files are needed but the limit is {soft} (hard {hard}): raise it (ulimit -n) or use fewer \
             --clients"
        ),
        None => Ok(Command::new(program)),
    }
}

/// The runs of one program on one case.
#[derive(Debug, Clone, Default)]
pub(crate) struct WsRow {
    pub(crate) clients: u64,
    /// Requested message size.
    pub(crate) size: u64,
    pub(crate) target: String,
    pub(crate) baseline: bool,
    pub(crate) runs: Vec<FanoutResult>,
}

impl WsRow {
    fn values(&self, f: impl Fn(&FanoutResult) -> f64) -> Vec<f64> {
        self.runs.iter().map(f).collect()
    }
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct WsReport {
    pub(crate) machine: Machine,
    pub(crate) command: String,
    pub(crate) deliveries: u64,
    pub(crate) rounds: u32,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    /// Share (0–1) of the machine's CPU busy during a quiet second before the runs.
    pub(crate) background_cpu: f64,
    pub(crate) rows: Vec<WsRow>,
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub(crate) fn run(args: &WsArgs) -> anyhow::Result<()> {
    if args.clients.contains(&0) || args.sizes.contains(&0) || args.sizes.is_empty() || args.clients.is_empty() {
        bail!("--clients and --size need values greater than 0");
    }
    let root = workspace_root();
    let load_before = load_average();
    let (fanout, baseline) = if args.no_build {
        let baseline = if args.no_baseline { None } else { Some(super::prebuilt(&root, BASELINE, false)?) };
        (super::prebuilt(&root, FANOUT, true)?, baseline)
    } else {
        let mut build = vec!["-p", "microframework-ws", "--example", FANOUT];
        if !args.no_baseline {
            build.extend(["-p", "bench-servers", "--bin", BASELINE]);
        }
        let exes = super::release_build(&root, &build)?;
        let exe = |name: &str| exes.get(name).cloned().with_context(|| format!("the build produced no `{name}`"));
        (exe(FANOUT)?, if args.no_baseline { None } else { Some(exe(BASELINE)?) })
    };
    let max_clients = args.clients.iter().copied().max().unwrap_or(0);
    command_with_fds(&fanout, max_clients + FD_HEADROOM)?;

    // Nothing of ours runs now: whatever keeps the CPU busy is someone else's.
    let before = CpuTimes::read();
    std::thread::sleep(Duration::from_secs(1));
    let background_cpu = before.zip(CpuTimes::read()).and_then(|(b, a)| a.busy_since(&b)).unwrap_or(0.0);

    let mut rows = Vec::new();
    for &clients in &args.clients {
        for &size in &args.sizes {
            if baseline.is_some() {
                rows.push(WsRow { clients, size, target: BASELINE.to_owned(), baseline: true, runs: Vec::new() });
            }
            rows.push(WsRow { clients, size, target: FANOUT.to_owned(), baseline: false, runs: Vec::new() });
        }
    }
    let per_case = if baseline.is_some() { 2 } else { 1 };
    for round in 0..args.rounds {
        eprintln!("== round {}/{}", round + 1, args.rounds);
        for case in 0..rows.len() / per_case {
            let mut order: Vec<usize> = (case * per_case..(case + 1) * per_case).collect();
            if (round as usize + case) % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (clients, size) = (rows[i].clients, rows[i].size);
                let messages = messages_for(args.deliveries, clients);
                let program = rows[i].target.clone();
                let mut cmd = if rows[i].baseline {
                    let exe = baseline.as_ref().context("no baseline executable")?;
                    let mut c = command_with_fds(exe, clients + FD_HEADROOM)?;
                    c.arg("--clients-exe").arg(&fanout);
                    c
                } else {
                    command_with_fds(&fanout, clients + FD_HEADROOM)?
                };
                cmd.args(["--clients", &clients.to_string(), "--messages", &messages.to_string()])
                    .args(["--size", &size.to_string()])
                    .current_dir(&root);
                let (status, stdout, stderr) = run_captured(&mut cmd, args.run_timeout)?;
                if !status.success() {
                    bail!("{program} failed ({status}) with {clients} clients, {size} B messages:\n{stderr}");
                }
                let result = FanoutResult::parse(&stdout)
                    .with_context(|| format!("{program} with {clients} clients; its stderr:\n{stderr}"))?;
                eprintln!(
                    "   {program:<11} {clients:>5} clients × {messages:>6} msgs of {:>4} B: {:>10.0} msgs/s, \
                     {:>5.1} KiB/conn, peak RSS {:.1} MiB{}",
                    result.size,
                    result.msgs_per_sec,
                    result.rss_per_conn_kib,
                    result.rss_peak_kib as f64 / 1024.0,
                    if result.lost() > 0 { format!(", {} lost", result.lost()) } else { String::new() }
                );
                rows[i].runs.push(result);
            }
        }
    }

    let report = WsReport {
        machine: Machine::describe(),
        command: command_line(),
        deliveries: args.deliveries,
        rounds: args.rounds,
        load_before,
        load_after: load_average(),
        background_cpu,
        rows,
    };
    let markdown = report.render();
    println!("{markdown}");
    if let Some(path) = &args.write {
        super::write_section(&root, path, "ws", &markdown)?;
    }
    Ok(())
}

impl WsReport {
    fn baseline_for(&self, row: &WsRow) -> Option<&WsRow> {
        self.rows.iter().find(|r| r.baseline && r.clients == row.clients && r.size == row.size)
    }

    /// Renders the report as markdown (no markers).
    pub(crate) fn render(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.machine;
        let mut out = String::new();
        let rounds =
            if self.rounds == 1 { "1 round".to_owned() } else { format!("{} rounds, median shown", self.rounds) };
        let has_baseline = self.rows.iter().any(|r| r.baseline);
        let _ = writeln!(
            out,
            "### WebSocket fan-out: microframework-ws hub (`fanout` example){}\n",
            if has_baseline { " vs bare tokio-tungstenite (`baseline-ws`)" } else { "" }
        );
        let _ = writeln!(out, "- Date: {}", m.date);
        let _ = writeln!(out, "- Machine: {}, {} cores, kernel {}", m.cpu, m.cores, m.kernel);
        let _ = writeln!(out, "- Toolchain: {}, `--release` profile of the workspace", m.rustc);
        let _ = writeln!(
            out,
            "- Load: every client in one room; {} messages delivered per run ({} / clients broadcasts, at least \
             {MIN_MESSAGES}), at most 128 broadcasts in flight (send queue 256); {rounds}",
            self.deliveries, self.deliveries
        );
        let _ = writeln!(
            out,
            "- Machine load: load average {} before, {} after (1/5/15 min); {:.0}% of the CPU busy in a quiet \
             second before the runs{}",
            self.load_before,
            self.load_after,
            self.background_cpu * 100.0,
            if self.background_cpu > report::BUSY_WARNING { " (busy machine: numbers are noisy)" } else { "" }
        );
        let _ = writeln!(out, "- Command: `{}`\n", self.command);

        let _ = writeln!(
            out,
            "| clients | message | target | delivered msgs/s | spread | MiB/s | msgs/s vs baseline | memory per \
             connection | server peak RSS | connect all | lost |"
        );
        let _ = writeln!(out, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            let rate = median(&row.values(|r| r.msgs_per_sec));
            let vs = match self.baseline_for(row) {
                Some(_) if row.baseline => Some("100%".to_owned()),
                Some(b) => ratio(rate, median(&b.values(|r| r.msgs_per_sec))).map(|r| format!("{:.1}%", r * 100.0)),
                None => None,
            };
            let actual = row.runs.first().map(|r| r.size).unwrap_or(row.size);
            let _ = writeln!(
                out,
                "| {} | {actual} B | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.clients,
                row.target,
                rate.map(|v| format!("{v:.0}")).unwrap_or_else(dash),
                spread(&row.values(|r| r.msgs_per_sec)),
                median(&row.values(|r| r.mib_per_sec)).map(|v| format!("{v:.1}")).unwrap_or_else(dash),
                vs.unwrap_or_else(dash),
                median(&row.values(|r| r.rss_per_conn_kib)).map(|v| format!("{v:.1} KiB")).unwrap_or_else(dash),
                median(&row.values(|r| r.rss_peak_kib as f64))
                    .map(|v| format!("{:.1} MiB", v / 1024.0))
                    .unwrap_or_else(dash),
                median(&row.values(|r| r.connect_s)).map(|v| format!("{:.2} s", v)).unwrap_or_else(dash),
                row.runs.iter().map(FanoutResult::lost).sum::<u64>(),
            );
        }
        let _ = writeln!(
            out,
            "\n<sub>Server and clients are separate processes on the same cores (the clients are the `fanout` \
             executable with `--role clients` for both targets). Delivered msgs/s is clients × broadcasts / time \
             from the first broadcast until every client received the last; spread is (max − min) / median \
             across rounds. Memory per connection is the growth of the server's VmRSS from before the clients \
             connect to after all joined, divided by the clients (idle connections); peak RSS is the server's \
             VmHWM including the broadcasts. Connect all is the time for the clients to connect and join \
             (64 handshakes at a time). `fanout` is a `Service` with the WebSocket router (rooms, envelopes, \
             heartbeats, limits, metrics, logs at warn); `baseline-ws` is tokio-tungstenite on a `TcpListener` \
             with the same per-connection bounded queue, batched writes and tungstenite buffer sizes (4 KiB \
             read, 8 KiB write), and nothing else.</sub>"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"clients":1000,"connect_s":0.41,"delivered":2000000,"dropped":0,"elapsed_s":2.5,"messages":2000,"mib_per_sec":97.6,"msgs_per_sec":800000.0,"rss_after_kib":30000,"rss_before_kib":10000,"rss_peak_kib":45000,"rss_per_conn_kib":20.0,"send_queue":256,"size":128,"window":128}"#;

    fn result(rate: f64) -> FanoutResult {
        FanoutResult { msgs_per_sec: rate, ..FanoutResult::parse(LINE).unwrap() }
    }

    #[test]
    fn parses_the_json_line() {
        let stdout = format!("noise\n{LINE}\n");
        let r = FanoutResult::parse(&stdout).unwrap();
        assert_eq!((r.clients, r.messages, r.size, r.delivered, r.dropped), (1000, 2000, 128, 2_000_000, 0));
        assert_eq!((r.msgs_per_sec, r.rss_per_conn_kib, r.rss_peak_kib), (800_000.0, 20.0, 45000));
        assert_eq!(r.lost(), 0);
        assert!(FanoutResult::parse("1000 clients x 2000 messages\n").is_err());
        assert!(FanoutResult::parse("{\"clients\": 1}").is_err());
    }

    #[test]
    fn lost_counts_dropped_and_missing() {
        let r = FanoutResult { delivered: 1_999_990, dropped: 10, ..result(1.0) };
        assert_eq!(r.lost(), 20);
    }

    #[test]
    fn messages_per_case() {
        assert_eq!(messages_for(5_000_000, 100), 50_000);
        assert_eq!(messages_for(5_000_000, 5000), 1000);
        assert_eq!(messages_for(1000, 5000), MIN_MESSAGES);
        assert_eq!(messages_for(10, 0), MIN_MESSAGES);
    }

    #[test]
    fn open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63704                63704                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some((1024, 524_288)));
        let unlimited = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_open_files_limit("Max processes 1 1 processes\n"), None);
    }

    #[test]
    fn renders_cases_with_ratios() {
        let row = |target: &str, baseline: bool, rate: f64| WsRow {
            clients: 1000,
            size: 128,
            target: target.into(),
            baseline,
            runs: vec![result(rate * 0.95), result(rate), result(rate * 1.05)],
        };
        let report = WsReport {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.0.0".into(),
                rustc: "rustc 1.95.0".into(),
                date: "Thu Jan  1 00:00:00 UTC 2026".into(),
            },
            command: "cargo xtask bench ws".into(),
            deliveries: 2_000_000,
            rounds: 3,
            load_before: "1.00 2.00 3.00".into(),
            load_after: "1.50 2.00 3.00".into(),
            background_cpu: 0.01,
            rows: vec![row("baseline-ws", true, 1_000_000.0), row("fanout", false, 800_000.0)],
        };
        let md = report.render();
        assert!(
            md.contains(
                "| 1000 | 128 B | baseline-ws | 1000000 | 10.0% | 97.6 | 100% | 20.0 KiB | 43.9 MiB | 0.41 s | 0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 1000 | 128 B | fanout | 800000 | 10.0% | 97.6 | 80.0% | 20.0 KiB | 43.9 MiB | 0.41 s | 0 |"),
            "{md}"
        );
        assert!(md.contains("load average 1.00 2.00 3.00 before, 1.50 2.00 3.00 after"), "{md}");
        assert!(md.contains("- Command: `cargo xtask bench ws`"), "{md}");
    }
}
