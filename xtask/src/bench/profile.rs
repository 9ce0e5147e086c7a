//! `cargo xtask bench profile`: where a request's cost goes, middleware by middleware — the map
//! for the performance work of issue 10. Every figure is a count, not a time, so the report does
//! not depend on how busy the machine is (except the syscall counts, which depend a little on
//! scheduling).
//!
//! - Instructions per request, in-process: `benches/servers/src/profile.rs` (the `profile`
//!   binary, release) builds one stack (the bare axum router, each middleware of the default stack
//!   alone, configured as a generated service's production configuration, the whole default stack
//!   and the service router `AppBuilder` assembles) and sends it real requests with
//!   `ready` + `call`; it runs under `valgrind --tool=callgrind --toggle-collect`, which counts the
//!   instructions of the measured requests only (not start-up or warm-up). One run per stack and
//!   route: instruction counts are deterministic.
//! - Allocations per request, in-process: the same program with a counting global allocator
//!   (`profile-allocs`), natively.
//! - Where the instructions go: `callgrind_annotate` of the service router's `/hello` run, self
//!   cost per function (summed over the source files a function's inlined code comes from).
//! - Whole servers: `framework-hello` and `baseline-axum` (the `bench http` pair) over loopback
//!   with keep-alive connections from a small client in this process: instructions per request
//!   under callgrind (counters zeroed with `callgrind_control` after the warm-up and dumped after
//!   the measured requests, so that start-up does not count), and syscalls per request with
//!   `strace -c -f` attached after the warm-up.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use super::proc::{Launch, Server, free_port, run_captured};
use super::report::dash;
use super::{Machine, command_line, median};
use crate::workspace_root;

const PROGRAM: &str = "profile";
const ALLOCS_PROGRAM: &str = "profile-allocs";
const BASELINE: &str = "baseline-axum";
const SERVICE: &str = "framework-hello";
/// The function inside which callgrind counts (see `benches/servers/src/profile.rs`).
const TOGGLE: &str = "*profile_measured_requests*";
/// The reference stack of the in-process tables.
const BARE: &str = "bare axum";
/// The stack that tells what `Router::layer` itself costs.
const PASS_THROUGH: &str = "pass-through layer";
/// The stack that tells what the `ConnectInfo` extension costs.
const CONNECT_INFO: &str = "connect info";
/// Functions listed per stack in the "over bare axum" table.
const PER_STACK_FUNCTIONS: usize = 5;
/// The stack whose functions the report lists.
const FULL: &str = "service router";
/// The in-process routes: the program's name for each, and the path it requests.
const ROUTES: [(&str, &str); 2] = [("hello", "/hello"), ("json", "/users/42")];
/// The routes of the whole servers (the `bench http` routes).
const SERVER_ROUTES: [&str; 2] = ["/hello", "/hello/json"];
const READY_PATH: &str = "/health/ready";
/// Under valgrind a server starts slowly.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Options of `cargo xtask bench profile`.
#[derive(Debug, Args)]
pub(crate) struct ProfileArgs {
    /// Measured requests per stack and route, in-process.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Requests per stack and route before the measured ones (in-process and whole servers).
    #[arg(long, default_value_t = 200)]
    warmup: u32,
    /// Requests per route and round counted by callgrind in each whole server.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    server_requests: u32,
    /// Rounds of each whole server's callgrind counts per route (they vary a little with the
    /// scheduling of the multi-thread runtime); the report shows the median and the range.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    server_rounds: u32,
    /// Requests to each whole server while strace counts its syscalls.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    syscall_requests: u32,
    /// Keep-alive connections the client spreads the whole servers' requests over (one thread each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    connections: u32,
    /// Functions listed in each "where the instructions go" table.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// Only the in-process tables (no whole servers, no strace).
    #[arg(long)]
    no_servers: bool,
    /// Also write the report between `<!-- bench:profile:start -->` and `<!-- bench:profile:end -->`
    /// in this markdown file (relative paths are from the workspace root; created if absent).
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
    /// Skip `cargo build --release` and use the programs already in the target directory.
    #[arg(long)]
    no_build: bool,
}

/// A stack as `profile --list` describes it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct StackInfo {
    pub(crate) name: String,
    pub(crate) about: String,
    #[serde(default)]
    pub(crate) connect_info: bool,
    #[serde(default)]
    pub(crate) token: bool,
    /// The routes are wrapped with `Router::layer` once.
    #[serde(default)]
    pub(crate) layered: bool,
}

#[derive(Debug, Deserialize)]
struct StackList {
    stacks: Vec<StackInfo>,
}

/// Allocator counters of the measured requests, as `profile-allocs` reports them.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct AllocStats {
    pub(crate) allocations: u64,
    pub(crate) reallocations: u64,
    pub(crate) bytes: u64,
}

#[derive(Debug, Deserialize)]
struct ProgramOutput {
    requests: u32,
    allocs: Option<AllocStats>,
}

/// One stack's figures for one route, per request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Figures {
    pub(crate) instructions: f64,
    pub(crate) allocations: f64,
    pub(crate) reallocations: f64,
    pub(crate) bytes: f64,
}

impl Figures {
    /// Per-request figures from a run's totals over `requests`.
    pub(crate) fn per_request(instructions: u64, allocs: AllocStats, requests: u32) -> Self {
        let n = f64::from(requests.max(1));
        Self {
            instructions: instructions as f64 / n,
            allocations: allocs.allocations as f64 / n,
            reallocations: allocs.reallocations as f64 / n,
            bytes: allocs.bytes as f64 / n,
        }
    }
}

/// One row of the in-process tables.
#[derive(Debug, Clone)]
pub(crate) struct StackRow {
    pub(crate) info: StackInfo,
    /// By route, in the order of [`ROUTES`].
    pub(crate) routes: Vec<Figures>,
    /// The largest per-function differences from bare axum on `/hello` (self cost per request).
    pub(crate) over_bare: Vec<FunctionCost>,
}

/// A function's self cost per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionCost {
    pub(crate) name: String,
    pub(crate) per_request: f64,
}

/// A whole server's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerRow {
    pub(crate) target: String,
    /// Instructions per request of each round, by route in the order of [`SERVER_ROUTES`].
    pub(crate) instructions: Vec<Vec<f64>>,
    /// Syscalls per `/hello` request, by name, most frequent first.
    pub(crate) syscalls: Vec<(String, f64)>,
}

impl ServerRow {
    fn syscalls_total(&self) -> f64 {
        self.syscalls.iter().map(|(_, n)| n).sum()
    }

    /// The median instructions per request of route `i` over the rounds.
    fn instructions(&self, i: usize) -> Option<f64> {
        self.instructions.get(i).and_then(|rounds| median(rounds))
    }
}

/// The index of the median of `values` (the lower middle one for an even count).
fn median_index(values: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    order.get(values.len().saturating_sub(1) / 2).copied()
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct ProfileReport {
    pub(crate) machine: Machine,
    pub(crate) valgrind: String,
    pub(crate) strace: String,
    pub(crate) command: String,
    pub(crate) requests: u32,
    pub(crate) warmup: u32,
    pub(crate) rows: Vec<StackRow>,
    /// Self cost by function of the service router's `/hello`, in-process.
    pub(crate) top_in_process: Vec<FunctionCost>,
    /// The same for the whole `framework-hello` server's `/hello`; empty without servers.
    pub(crate) top_server: Vec<FunctionCost>,
    pub(crate) servers: Vec<ServerRow>,
    pub(crate) server_requests: u32,
    pub(crate) server_rounds: u32,
    pub(crate) syscall_requests: u32,
    pub(crate) connections: u32,
    /// Where the callgrind files were left.
    pub(crate) callgrind_dir: String,
}

/// The `totals:` (or, failing that, `summary:`) figure of a callgrind output file: the first
/// event's count.
pub(crate) fn callgrind_total(text: &str) -> Option<u64> {
    let find = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    find("totals:").or_else(|| find("summary:"))
}

/// Self cost by function from `callgrind_annotate` output (`Ir  file:function [object]` lines,
/// with or without percentages), summed over the files a function's code comes from (inlined
/// code is listed under its source file), most expensive first.
pub(crate) fn parse_annotate(text: &str) -> Vec<(String, u64)> {
    let mut by_name: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(char::is_whitespace) else { continue };
        if count.is_empty() || !count.chars().all(|c| c.is_ascii_digit() || c == ',') {
            continue;
        }
        let Ok(count) = count.replace(',', "").parse::<u64>() else { continue };
        let mut rest = rest.trim_start();
        // An optional percentage: `(12.34%)`.
        if rest.starts_with('(')
            && let Some(end) = rest.find(')')
        {
            rest = rest[end + 1..].trim_start();
        }
        if rest.starts_with("PROGRAM TOTALS") || rest.is_empty() {
            continue;
        }
        // `file:function [object]`: file names have no colon; function names do (`a::b`).
        let function = rest.split_once(':').map_or(rest, |(_, f)| f);
        let function = match function.rfind(" [") {
            Some(i) if function.ends_with(']') => &function[..i],
            _ => function,
        };
        *by_name.entry(function.trim().to_owned()).or_default() += count;
    }
    let mut out: Vec<(String, u64)> = by_name.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// `functions` without the frames that were open across a dump taken while the program ran
/// (thread start, the worker loop): callgrind lists each with the whole dump's `total` as its own
/// cost. No function's self cost comes near the total otherwise.
pub(crate) fn without_open_frames(functions: Vec<(String, u64)>, total: u64) -> Vec<(String, u64)> {
    functions.into_iter().filter(|(_, c)| (*c as f64) < 0.99 * total as f64).collect()
}

/// Per-request self cost by function: `larger` (a run with `requests` more requests than
/// `smaller`) minus `smaller`, most expensive first, the first `top`.
pub(crate) fn function_difference(
    smaller: &[(String, u64)],
    larger: &[(String, u64)],
    requests: u32,
    top: usize,
) -> Vec<FunctionCost> {
    let before: HashMap<&str, u64> = smaller.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let mut out: Vec<FunctionCost> = larger
        .iter()
        .filter_map(|(name, c)| {
            let diff = c.saturating_sub(before.get(name.as_str()).copied().unwrap_or(0));
            (diff > 0)
                .then(|| FunctionCost { name: name.clone(), per_request: diff as f64 / f64::from(requests.max(1)) })
        })
        .collect();
    out.sort_by(|a, b| b.per_request.total_cmp(&a.per_request).then_with(|| a.name.cmp(&b.name)));
    out.truncate(top);
    out
}

/// Calls per syscall from `strace -c` output (the summary table), without the `total` line.
pub(crate) fn parse_strace_summary(text: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `% time  seconds  usecs/call  calls  [errors]  syscall`
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let Some(&name) = fields.last() else { continue };
        if name == "total" {
            continue;
        }
        if let Ok(calls) = fields[3].parse::<u64>() {
            out.push((name.to_owned(), calls));
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The status code of an HTTP/1.1 status line.
pub(crate) fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// The value of a `Content-Length` header line (any case).
pub(crate) fn content_length(header_line: &str) -> Option<usize> {
    let (name, value) = header_line.split_once(':')?;
    name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
}

/// A function name short enough for a table: generic arguments dropped, `<T as Trait>::f`
/// read as `T::f`, and only the last three path segments kept
/// (`<microframework_http::middleware::observe::Observe<S> as tower_service::Service<R>>::call`
/// → `observe::Observe::call`). The callgrind files have the full names.
pub(crate) fn short_name(name: &str) -> String {
    // Drop generic arguments: a `<…>` group that follows a name character.
    let mut plain = String::new();
    let mut depth = 0usize;
    let mut prev: Option<char> = None;
    for c in name.chars() {
        match c {
            '<' if depth > 0 || prev.is_some_and(|p| p.is_alphanumeric() || p == '_') => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => plain.push(c),
        }
        if depth == 0 && c != '>' {
            prev = Some(c);
        }
    }
    // What is left in angle brackets is a qualified path: `<T as Trait>` reads as `T`, and
    // `<impl Type>` as `Type`.
    let mut path = String::new();
    let mut rest = plain.as_str();
    while let Some(open) = rest.find('<') {
        path.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('>').unwrap_or(after.len());
        let inner = &after[..close];
        let inner = inner.strip_prefix("impl ").unwrap_or(inner);
        path.push_str(inner.split(" as ").next().unwrap_or(inner));
        rest = after.get(close + 1..).unwrap_or("");
    }
    path.push_str(rest);
    let plain = path;
    let segments: Vec<&str> = plain.split("::").collect();
    segments[segments.len().saturating_sub(3)..].join("::")
}

/// A function for the report: short, in backticks (`<T>` would read as an HTML tag).
fn code_name(name: &str) -> String {
    format!("`{}`", short_name(name).replace('`', "'"))
}

fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("−{out}") } else { out }
}

fn signed(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, x.abs());
    if s.trim_start_matches(['0', '.']).is_empty() {
        format!("{:.*}", decimals, 0.0)
    } else if x < 0.0 {
        format!("−{s}")
    } else {
        format!("+{s}")
    }
}

fn signed_thousands(x: f64) -> String {
    let r = x.round();
    if r == 0.0 {
        "0".to_owned()
    } else if r > 0.0 {
        format!("+{}", thousands(r))
    } else {
        thousands(r)
    }
}

impl ProfileReport {
    fn bare(&self) -> Option<&StackRow> {
        self.rows.iter().find(|r| r.info.name == BARE)
    }

    fn row(&self, name: &str) -> Option<&StackRow> {
        self.rows.iter().find(|r| r.info.name == name)
    }

    /// A stack's instructions on `/hello` over bare axum's, less what every row that wraps the
    /// routes in a layer pays for `Router::layer` itself (the pass-through layer's cost) and, for
    /// requests that carry it, the `ConnectInfo` extension's: what the middleware itself costs.
    /// `None` for the rows that measure those two.
    pub(crate) fn own_cost(&self, row: &StackRow) -> Option<f64> {
        if matches!(row.info.name.as_str(), BARE | PASS_THROUGH | CONNECT_INFO) {
            return None;
        }
        let ir = |name: &str| self.row(name).and_then(|r| r.routes.first()).map(|f| f.instructions);
        let bare = ir(BARE)?;
        let mut own = row.routes.first()?.instructions - bare;
        if row.info.layered {
            own -= ir(PASS_THROUGH)? - bare;
        }
        if row.info.connect_info {
            own -= ir(CONNECT_INFO)? - bare;
        }
        Some(own)
    }

    /// The full stack's instructions over bare axum's, by route.
    pub(crate) fn full_ratios(&self) -> Vec<Option<f64>> {
        let full = self.row(FULL);
        (0..ROUTES.len())
            .map(|i| {
                let f = full?.routes.get(i)?.instructions;
                let b = self.bare()?.routes.get(i)?.instructions;
                (b > 0.0).then(|| f / b)
            })
            .collect()
    }

    /// Renders the report as markdown (no markers).
    pub(crate) fn render(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "### HTTP request path: instructions, allocations and syscalls per request\n");
        let _ = writeln!(out, "- Date: {}", m.date);
        let _ = writeln!(out, "- Machine: {}, {} cores, kernel {}", m.cpu, m.cores, m.kernel);
        let _ = writeln!(out, "- Toolchain: {}, `--release` profile of the workspace", m.rustc);
        let _ = writeln!(out, "- Tools: {} (callgrind), {}", self.valgrind, self.strace);
        let _ = writeln!(
            out,
            "- In-process: {} requests per stack and route after {} of warm-up, one current-thread tokio runtime; \
             callgrind counts the measured requests only",
            self.requests, self.warmup
        );
        if !self.servers.is_empty() {
            let _ = writeln!(
                out,
                "- Whole servers: {} keep-alive connections; callgrind counts {} requests per route and round after {} \
                 of warm-up (counters zeroed before and dumped after with `callgrind_control`), {} rounds, median and \
                 range shown; syscalls over {} `/hello` requests",
                self.connections, self.server_requests, self.warmup, self.server_rounds, self.syscall_requests
            );
        }
        let _ = writeln!(out, "- Command: `{}`\n", self.command);

        let bare = self.bare().cloned();
        let base = |i: usize| bare.as_ref().and_then(|b| b.routes.get(i).copied());
        let (h, j) = (ROUTES[0].1, ROUTES[1].1);

        let _ = writeln!(out, "#### Instructions per request, in-process (callgrind)\n");
        let _ = writeln!(
            out,
            "| stack | `{h}` | × bare axum | over bare axum | own cost | `{j}` | × bare axum | over bare axum |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            let mut line = format!("| {} |", row.info.name);
            for i in 0..ROUTES.len() {
                match (row.routes.get(i), base(i)) {
                    (Some(f), Some(b)) if b.instructions > 0.0 => {
                        let _ = write!(
                            line,
                            " {} | {:.2} | {} |",
                            thousands(f.instructions),
                            f.instructions / b.instructions,
                            signed_thousands(f.instructions - b.instructions),
                        );
                    }
                    (Some(f), _) => {
                        let _ = write!(line, " {} | {} | {} |", thousands(f.instructions), dash(), dash());
                    }
                    _ => {
                        let _ = write!(line, " {} | {} | {} |", dash(), dash(), dash());
                    }
                }
                if i == 0 {
                    let own = self.own_cost(row).map(signed_thousands).unwrap_or_else(dash);
                    let _ = write!(line, " {own} |");
                }
            }
            let _ = writeln!(out, "{line}");
        }
        let ratios = self.full_ratios();
        if let (Some(Some(rh)), Some(Some(rj))) = (ratios.first(), ratios.get(1)) {
            let _ = writeln!(
                out,
                "\nThe service router (the whole default stack as a service serves it) costs {rh:.2}× the \
                 instructions of bare axum on `{h}` and {rj:.2}× on `{j}`, in-process (without hyper, which both \
                 servers share; the whole servers are compared below)."
            );
        }

        let _ = writeln!(out, "\n#### Allocations per request, in-process (counting allocator)\n");
        let _ = writeln!(
            out,
            "| stack | `{h}` allocations | over bare axum | bytes | over bare axum | `{j}` allocations | over bare \
             axum | bytes | over bare axum |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            let mut line = format!("| {} |", row.info.name);
            for i in 0..ROUTES.len() {
                match (row.routes.get(i), base(i)) {
                    (Some(f), Some(b)) => {
                        let reallocs = if f.reallocations > 0.005 {
                            format!(" (+{:.2} realloc)", f.reallocations)
                        } else {
                            String::new()
                        };
                        let _ = write!(
                            line,
                            " {:.2}{reallocs} | {} | {} | {} |",
                            f.allocations,
                            signed(f.allocations + f.reallocations - b.allocations - b.reallocations, 2),
                            thousands(f.bytes),
                            signed_thousands(f.bytes - b.bytes)
                        );
                    }
                    _ => {
                        let _ = write!(line, " {} | {} | {} | {} |", dash(), dash(), dash(), dash());
                    }
                }
            }
            let _ = writeln!(out, "{line}");
        }

        if self.rows.iter().any(|r| !r.over_bare.is_empty()) {
            let _ = writeln!(
                out,
                "\n#### What each stack adds to bare axum, by function (`{h}`, self cost per request, the largest \
                 {PER_STACK_FUNCTIONS})\n"
            );
            let _ = writeln!(out, "| stack | over bare axum | functions |");
            let _ = writeln!(out, "|---|---:|---|");
            for row in &self.rows {
                if row.over_bare.is_empty() {
                    continue;
                }
                let over = match (row.routes.first(), base(0)) {
                    (Some(f), Some(b)) => signed_thousands(f.instructions - b.instructions),
                    _ => dash(),
                };
                let functions: Vec<String> = row
                    .over_bare
                    .iter()
                    .map(|f| format!("{} {}", code_name(&f.name), signed_thousands(f.per_request)))
                    .collect();
                let _ = writeln!(out, "| {} | {over} | {} |", row.info.name, functions.join(", "));
            }
        }

        if !self.servers.is_empty() {
            let _ = writeln!(out, "\n#### Whole servers over loopback (callgrind, strace)\n");
            let baseline = self.servers.iter().find(|s| s.target == BASELINE).cloned();
            let _ = writeln!(
                out,
                "| server | `{}` instructions/request | × {BASELINE} | `{}` instructions/request | × {BASELINE} | \
                 syscalls per `/hello` request | most frequent (per request) |",
                SERVER_ROUTES[0], SERVER_ROUTES[1]
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
            for s in &self.servers {
                let mut line = format!("| {} |", s.target);
                for i in 0..SERVER_ROUTES.len() {
                    let ir = s.instructions(i);
                    let b = baseline.as_ref().and_then(|b| b.instructions(i));
                    let ratio = match (ir, b) {
                        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                        _ => dash(),
                    };
                    let rounds = s.instructions.get(i).map(Vec::as_slice).unwrap_or_default();
                    let range = match (rounds.iter().copied().reduce(f64::min), rounds.iter().copied().reduce(f64::max))
                    {
                        (Some(lo), Some(hi)) if rounds.len() > 1 => format!(" ({}–{})", thousands(lo), thousands(hi)),
                        _ => String::new(),
                    };
                    let _ = write!(line, " {}{range} | {ratio} |", ir.map(thousands).unwrap_or_else(dash));
                }
                let frequent: Vec<String> = s
                    .syscalls
                    .iter()
                    .filter(|(_, c)| *c >= 0.005)
                    .take(5)
                    .map(|(n, c)| format!("{n} {c:.2}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "{line} {} | {} |",
                    if s.syscalls.is_empty() { dash() } else { format!("{:.2}", s.syscalls_total()) },
                    if frequent.is_empty() { dash() } else { frequent.join(", ") }
                );
            }
        }

        let mut top_table = |title: &str, rows: &[FunctionCost], total: Option<f64>| {
            if rows.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n#### Where the instructions go: {title}\n");
            let _ = writeln!(out, "| function (self cost) | instructions/request | share |");
            let _ = writeln!(out, "|---|---:|---:|");
            for f in rows {
                let share = total.filter(|t| *t > 0.0).map(|t| format!("{:.1}%", f.per_request / t * 100.0));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    code_name(&f.name),
                    thousands(f.per_request),
                    share.unwrap_or_else(dash)
                );
            }
        };
        let full_total =
            self.rows.iter().find(|r| r.info.name == FULL).and_then(|r| r.routes.first()).map(|f| f.instructions);
        top_table(&format!("{FULL}, `{h}`, in-process"), &self.top_in_process, full_total);
        let server_total = self.servers.iter().find(|s| s.target == SERVICE).and_then(|s| s.instructions(0));
        top_table(&format!("{SERVICE}, `{}`, whole server", SERVER_ROUTES[0]), &self.top_server, server_total);

        let _ = writeln!(out, "\nThe stacks:\n");
        for row in &self.rows {
            let _ = writeln!(out, "- {}: {}", row.info.name, row.info.about);
        }
        let _ = writeln!(
            out,
            "\n<sub>In-process, every stack wraps the same axum router (`GET /hello` answers a static text, `GET \
             /users/{{id}}` reads a path parameter and answers a small JSON object) and is materialised with \
             `with_state(())` as the framework's server does; each request is a real `http::Request`, sent with \
             `ready` + `call` on a clone of the router, its response body read to the end and its status checked, \
             so every row includes the router, the handler and building the request. Middleware is configured as a \
             service generated by `microframework new` (REST, no database, no auth) in production \
             (`configs/config.yaml` + `config.prod.yaml`: JSON logs at info, rate limit on, body limit 1 MiB, \
             timeout 30 s, admin port), except that the rate-limit buckets never run dry; JSON logging and the \
             Prometheus recorder are installed for every stack. Callgrind counts the instructions inside the \
             function that sends the measured requests (`--toggle-collect`), including the runtime's work for \
             them. Own cost is a row's instructions over bare axum less the pass-through layer's (every \
             middleware row wraps the routes in one `Router::layer`, and so does the default stack) and, where \
             the requests carry `ConnectInfo`, less the connect-info row's. Allocations are `alloc` calls (and \
             `realloc` calls, in parentheses) of the measured requests, bytes what they asked for; the \"over bare axum\" allocation column counts both. Functions are listed \
             by self cost (instructions in the function itself, not in what it calls), summed over the source \
             files its inlined code comes from. The whole servers are the `bench http` pair \
             (`{SERVICE}` with JSON logs at info, `{BASELINE}`), loaded from this process over loopback, one \
             request at a time per connection; their syscalls are counted with `strace -c -f` attached after the \
             warm-up, so they depend somewhat on how requests from the connections interleave. The callgrind \
             files are left in `{}` for `callgrind_annotate`.</sub>",
            self.callgrind_dir
        );
        out
    }
}

/// `<tool> <version flag>`'s first line, or an error naming what to install.
fn tool_version(tool: &str, flag: &str) -> anyhow::Result<String> {
    let out = Command::new(tool)
        .arg(flag)
        .output()
        .with_context(|| format!("running `{tool} {flag}`: is {tool} installed? (apt-get install valgrind strace)"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().next().unwrap_or(tool).trim().to_owned())
}

/// A command with the caller's `APP_*` and `RUST_LOG` removed (they would change what is measured).
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    super::proc::remove_env(&mut cmd, |key| key.starts_with("APP_") || key == "RUST_LOG");
    cmd
}

fn slug(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_owned()
}

/// Runs the in-process program for one stack and route (under callgrind when `callgrind_out` is
/// given); returns its output.
fn run_program(
    program: &Path,
    stack: &str,
    route: &str,
    args: &ProfileArgs,
    callgrind_out: Option<&Path>,
) -> anyhow::Result<ProgramOutput> {
    let mut cmd = match callgrind_out {
        Some(out) => {
            let mut cmd = clean_command("valgrind");
            cmd.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(format!("--toggle-collect={TOGGLE}"))
                .arg(program);
            cmd
        }
        None => clean_command(program),
    };
    cmd.args(["--stack", stack, "--route", route])
        .args(["--requests", &args.requests.to_string()])
        .args(["--warmup", &args.warmup.to_string()]);
    let (status, stdout, stderr) = run_captured(&mut cmd, RUN_TIMEOUT)?;
    if !status.success() {
        bail!("{} --stack {stack:?} --route {route} failed ({status}):\n{stderr}", program.display());
    }
    super::parse_last_json_line(&stdout, PROGRAM)
}

fn callgrind_total_of(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    callgrind_total(&text).with_context(|| format!("no totals in {}", path.display()))
}

fn annotate(path: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let out = Command::new("callgrind_annotate")
        .args(["--auto=no", "--show-percs=no", "--threshold=100"])
        .arg(path)
        .output()
        .context("running callgrind_annotate")?;
    if !out.status.success() {
        bail!("callgrind_annotate {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(parse_annotate(&String::from_utf8_lossy(&out.stdout)))
}

/// Keep-alive connections to a server, one thread each while sending.
struct Client {
    conns: Vec<BufReader<TcpStream>>,
}

impl Client {
    fn connect(port: u16, connections: u32) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let conns = (0..connections)
            .map(|_| {
                let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                Ok(BufReader::new(s))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { conns })
    }

    /// Sends `requests` `GET path` in all, spread over the connections; every answer must be 200.
    fn send(&mut self, path: &str, requests: u32) -> anyhow::Result<()> {
        let n = self.conns.len() as u32;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .conns
                .iter_mut()
                .enumerate()
                .map(|(i, conn)| {
                    let count = requests / n + u32::from((i as u32) < requests % n);
                    let request = request.as_bytes();
                    scope.spawn(move || -> anyhow::Result<()> {
                        for _ in 0..count {
                            conn.get_mut().write_all(request)?;
                            let status = read_response(conn)?;
                            if status != 200 {
                                bail!("GET {path}: status {status}");
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
            }
            Ok(())
        })
    }
}

/// Reads one response (status line, headers, `Content-Length` body); returns the status.
fn read_response(conn: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let status = parse_status_line(&line).with_context(|| format!("not an HTTP status line: {line:?}"))?;
    let mut length = None;
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            bail!("the connection closed in the middle of a response");
        }
        if line == "\r\n" {
            break;
        }
        if let Some(n) = content_length(&line) {
            length = Some(n);
        }
        if line.to_ascii_lowercase().starts_with("transfer-encoding:") {
            bail!("chunked responses are not supported by this client");
        }
    }
    let mut body = vec![0; length.context("a response without Content-Length")?];
    conn.read_exact(&mut body)?;
    Ok(status)
}

/// How to start a whole server natively on `port` (as `bench http` does).
fn launch(name: &str, exe: &Path, port: u16, cwd: &Path) -> Launch {
    let (args, env) = if name == BASELINE {
        (vec![port.to_string()], Vec::new())
    } else {
        (
            Vec::new(),
            vec![
                ("APP_SERVER__HOST".to_owned(), "127.0.0.1".to_owned()),
                ("APP_SERVER__PORT".to_owned(), port.to_string()),
                ("APP_LOGGING__LEVEL".to_owned(), "info".to_owned()),
                ("APP_LOGGING__FORMAT".to_owned(), "json".to_owned()),
            ],
        )
    };
    Launch {
        name: name.to_owned(),
        program: exe.to_owned(),
        args,
        cwd: cwd.to_owned(),
        env,
        clear_env_prefixes: vec!["APP_".to_owned(), "RUST_LOG".to_owned()],
    }
}

/// `callgrind_control <action> <pid>`: always with the pid, so that no other callgrind run on
/// the machine is touched.
fn callgrind_control(action: &str, pid: u32) -> anyhow::Result<()> {
    let out = Command::new("callgrind_control")
        .args([action, &pid.to_string()])
        .output()
        .context("running callgrind_control")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || text.contains("Error") || text.contains("No active callgrind") {
        bail!("callgrind_control {action} {pid} failed: {}", text.trim());
    }
    Ok(())
}

/// Waits for the callgrind dump `path` to be complete (it ends with its `totals:` line).
fn wait_dump(path: &Path, timeout: Duration) -> anyhow::Result<u64> {
    let start = Instant::now();
    loop {
        if let Some(total) = std::fs::read_to_string(path).ok().as_deref().and_then(callgrind_total) {
            return Ok(total);
        }
        if start.elapsed() > timeout {
            bail!("callgrind wrote no complete {} within {timeout:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What callgrind counted in a whole server, by route in the order of [`SERVER_ROUTES`].
struct ServerCounts {
    /// Instructions per request of each round.
    per_request: Vec<Vec<f64>>,
    /// The dump of each round.
    dumps: Vec<Vec<PathBuf>>,
}

/// A whole server's instructions per request: one process under callgrind; for each route, a
/// warm-up, then in each round: zero the counters (`callgrind_control --zero`), send
/// `server_requests`, dump them (`--dump`).
fn server_instructions(
    name: &str,
    exe: &Path,
    args: &ProfileArgs,
    dir: &Path,
    cwd: &Path,
) -> anyhow::Result<ServerCounts> {
    let port = free_port()?;
    let out = dir.join(format!("{}.server.callgrind", slug(name)));
    let mut l = launch(name, exe, port, cwd);
    let mut vg_args = vec![
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
        exe.display().to_string(),
    ];
    vg_args.append(&mut l.args);
    l.args = vg_args;
    l.program = PathBuf::from("valgrind");
    l.name = format!("{name} (callgrind)");
    let mut server = Server::spawn(&l, port)?;
    server.wait_ready(READY_PATH, READY_TIMEOUT)?;
    let pid = server.pid();
    let mut client = Client::connect(port, args.connections)?;
    let (mut figures, mut dumps) = (Vec::new(), Vec::new());
    let mut dump = 0;
    for path in SERVER_ROUTES {
        client.send(path, args.warmup)?;
        let (mut rounds, mut files) = (Vec::new(), Vec::new());
        for round in 1..=args.server_rounds {
            callgrind_control("--zero", pid)?;
            client.send(path, args.server_requests)?;
            callgrind_control("--dump", pid)?;
            dump += 1;
            let file = PathBuf::from(format!("{}.{dump}", out.display()));
            let per = wait_dump(&file, Duration::from_secs(60))? as f64 / f64::from(args.server_requests);
            eprintln!("   {name:<16} {path:<12} {per:>8.0} instructions per request (round {round})");
            rounds.push(per);
            files.push(file);
        }
        figures.push(rounds);
        dumps.push(files);
    }
    drop(client);
    server.terminate(SHUTDOWN_TIMEOUT)?;
    Ok(ServerCounts { per_request: figures, dumps })
}

/// Waits until every thread of `pid` is traced (strace attached).
fn wait_traced(pid: u32, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
        let mut all = true;
        for t in tasks {
            let status = std::fs::read_to_string(t?.path().join("status")).unwrap_or_default();
            let traced = status
                .lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .is_some_and(|v| v.trim().parse::<u32>().is_ok_and(|p| p != 0));
            all &= traced;
        }
        if all {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("strace did not attach to every thread of {pid} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn interrupt(child: &mut Child) -> anyhow::Result<()> {
    let status =
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().context("running `kill -INT`")?;
    if !status.success() {
        bail!("`kill -INT {}` failed", child.id());
    }
    let start = Instant::now();
    while child.try_wait()?.is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            bail!("strace did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Syscalls per request of a native server: strace attached after the warm-up, for
/// `syscall_requests` `GET /hello`.
fn server_syscalls(
    name: &str,
    exe: &Path,
    args: &ProfileArgs,
    dir: &Path,
    cwd: &Path,
) -> anyhow::Result<Vec<(String, f64)>> {
    let port = free_port()?;
    let mut server = Server::spawn(&launch(name, exe, port, cwd), port)?;
    server.wait_ready(READY_PATH, Duration::from_secs(10))?;
    let mut client = Client::connect(port, args.connections)?;
    client.send(SERVER_ROUTES[0], args.warmup.max(1))?;
    let out = dir.join(format!("{}.strace", slug(name)));
    let mut strace = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&out)
        .args(["-p", &server.pid().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting strace")?;
    let measured = wait_traced(server.pid(), Duration::from_secs(10))
        .and_then(|()| client.send(SERVER_ROUTES[0], args.syscall_requests));
    interrupt(&mut strace)?;
    measured?;
    drop(client);
    server.terminate(Duration::from_secs(10))?;
    let text = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let n = f64::from(args.syscall_requests);
    Ok(parse_strace_summary(&text).into_iter().map(|(s, c)| (s, c as f64 / n)).collect())
}

/// Runs the profile and prints (and optionally writes) the report.
pub(crate) fn run(args: &ProfileArgs) -> anyhow::Result<()> {
    let valgrind = tool_version("valgrind", "--version")?;
    if !args.no_servers {
        tool_version("callgrind_control", "--version")?;
    }
    let strace = if args.no_servers { String::new() } else { tool_version("strace", "-V")? };
    let root = workspace_root();
    let names = [PROGRAM, ALLOCS_PROGRAM, BASELINE, SERVICE];
    let exes: HashMap<String, PathBuf> = if args.no_build {
        names.iter().map(|n| Ok((n.to_string(), super::prebuilt(&root, n, false)?))).collect::<anyhow::Result<_>>()?
    } else {
        let mut cargo_args = vec!["-p", "bench-servers"];
        for n in names {
            cargo_args.extend(["--bin", n]);
        }
        super::release_build(&root, &cargo_args)?
    };
    let exe = |name: &str| exes.get(name).cloned().with_context(|| format!("the build produced no `{name}`"));
    let (program, allocs_program) = (exe(PROGRAM)?, exe(ALLOCS_PROGRAM)?);

    let dir = super::target_dir(&root).join("bench-profile");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Files of an earlier run would be mistaken for this run's.
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "callgrind" || e == "strace") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let listed = clean_command(&program).arg("--list").output().context("running profile --list")?;
    let stacks: StackList = super::parse_last_json_line(&String::from_utf8_lossy(&listed.stdout), PROGRAM)?;

    let started = Instant::now();
    let mut rows = Vec::new();
    for info in &stacks.stacks {
        let mut routes = Vec::new();
        for (route, _) in ROUTES {
            let file = dir.join(format!("{}.{route}.callgrind", slug(&info.name)));
            let measured = run_program(&program, &info.name, route, args, Some(&file))?;
            let instructions = callgrind_total_of(&file)?;
            let counted = run_program(&allocs_program, &info.name, route, args, None)?;
            let allocs = counted.allocs.context("profile-allocs reported no allocation counts")?;
            let f = Figures::per_request(instructions, allocs, measured.requests);
            eprintln!(
                "   {:<44} {route:<5} {:>8.0} instructions, {:>6.2} allocations, {:>6.0} bytes per request",
                info.name, f.instructions, f.allocations, f.bytes
            );
            routes.push(f);
        }
        rows.push(StackRow { info: info.clone(), routes, over_bare: Vec::new() });
    }
    eprintln!("== in-process stacks done in {:.0} s", started.elapsed().as_secs_f64());
    let hello_file = |stack: &str| dir.join(format!("{}.hello.callgrind", slug(stack)));
    let bare_functions = annotate(&hello_file(BARE))?;
    let mut top_in_process = Vec::new();
    for row in &mut rows {
        if row.info.name == BARE {
            continue;
        }
        let functions = annotate(&hello_file(&row.info.name))?;
        // Both runs sent the same requests: the difference per request is the stack's.
        row.over_bare = function_difference(&bare_functions, &functions, args.requests, PER_STACK_FUNCTIONS);
        if row.info.name == FULL {
            top_in_process = function_difference(&[], &functions, args.requests, args.top);
        }
    }

    let mut servers = Vec::new();
    let mut top_server = Vec::new();
    if !args.no_servers {
        let cwd = tempfile::Builder::new().prefix("xtask-bench-profile-").tempdir()?;
        for name in [BASELINE, SERVICE] {
            let exe = exe(name)?;
            let mut row = ServerRow { target: name.to_owned(), ..ServerRow::default() };
            let counts = server_instructions(name, &exe, args, &dir, cwd.path())?;
            if name == SERVICE
                && let (Some(rounds), Some(files)) = (counts.per_request.first(), counts.dumps.first())
                && let Some(file) = median_index(rounds).and_then(|m| files.get(m))
            {
                let functions = without_open_frames(annotate(file)?, callgrind_total_of(file)?);
                top_server = function_difference(&[], &functions, args.server_requests, args.top);
            }
            row.instructions = counts.per_request;
            row.syscalls = server_syscalls(name, &exe, args, &dir, cwd.path())?;
            eprintln!("   {name:<16} {:.2} syscalls per request", row.syscalls_total());
            servers.push(row);
        }
    }

    let report = ProfileReport {
        machine: Machine::describe(),
        valgrind,
        strace,
        command: command_line(),
        requests: args.requests,
        warmup: args.warmup,
        rows,
        top_in_process,
        top_server,
        servers,
        server_requests: args.server_requests,
        server_rounds: args.server_rounds,
        syscall_requests: args.syscall_requests,
        connections: args.connections,
        callgrind_dir: dir.strip_prefix(&root).unwrap_or(&dir).display().to_string(),
    };
    let md = report.render();
    println!("{md}");
    if let Some(path) = &args.write {
        super::write_section(&root, path, "profile", &md)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_totals() {
        let text =
            "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 821\n\nfn=(1) main\n5 3\ntotals: 13036853\n";
        assert_eq!(callgrind_total(text), Some(13_036_853));
        assert_eq!(callgrind_total("summary: 42\n"), Some(42));
        assert_eq!(callgrind_total("events: Ir\n"), None);
    }

    #[test]
    fn annotate_lines_are_summed_by_function() {
        let text = "\
--------------------------------------------------------------------------------
Ir         file:function
--------------------------------------------------------------------------------
46,297,513  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir         file:function
--------------------------------------------------------------------------------
5,106,128  ./string/../sysdeps/x86_64/multiarch/memmove-vec-unaligned-erms.S:__memcpy_avx_unaligned_erms [/usr/lib/x86_64-linux-gnu/libc.so.6]
2,158,000  /root/.cargo/registry/src/http-1.5.0/src/header/map.rs:http::header::map::HeaderMap<T>::try_insert2 [/t/release/profile]
  280,000  /rustc/abc/library/core/src/ptr/mod.rs:http::header::map::HeaderMap<T>::try_insert2
1,216,000 (2.63%)  /rustc/abc/library/core/src/iter/traits/iterator.rs:microframework_telemetry::json_fields::push_json_str
      821  ???:0x0000000000123456 [/t/release/profile]
";
        let parsed = parse_annotate(text);
        assert_eq!(parsed[0], ("__memcpy_avx_unaligned_erms".to_owned(), 5_106_128));
        assert_eq!(parsed[1], ("http::header::map::HeaderMap<T>::try_insert2".to_owned(), 2_438_000));
        assert_eq!(parsed[2], ("microframework_telemetry::json_fields::push_json_str".to_owned(), 1_216_000));
        assert_eq!(parsed[3], ("0x0000000000123456".to_owned(), 821));
        assert_eq!(parsed.len(), 4, "{parsed:?}");
    }

    #[test]
    fn function_costs_per_request_from_two_runs() {
        let small = vec![("a".to_owned(), 1_000), ("b".to_owned(), 500), ("startup".to_owned(), 9_000)];
        let large =
            vec![("a".to_owned(), 5_000), ("b".to_owned(), 700), ("c".to_owned(), 100), ("startup".to_owned(), 9_000)];
        let diff = function_difference(&small, &large, 100, 2);
        assert_eq!(
            diff,
            vec![
                FunctionCost { name: "a".into(), per_request: 40.0 },
                FunctionCost { name: "b".into(), per_request: 2.0 }
            ]
        );
        let single = function_difference(&[], &large, 1_000, 10);
        assert_eq!(single.len(), 4);
        assert_eq!(single[0].per_request, 9.0);
    }

    #[test]
    fn open_frames_are_dropped() {
        let functions = vec![("start_thread".to_owned(), 1_000), ("memcpy".to_owned(), 300), ("run".to_owned(), 995)];
        assert_eq!(without_open_frames(functions, 1_000), vec![("memcpy".to_owned(), 300)]);
    }

    #[test]
    fn strace_summary() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.12    0.102000          10     10000           writev
 30.00    0.070000           7     10000      2000 recvfrom
 20.00    0.040000           8      5000           epoll_wait
  4.88    0.010000           5      2000           futex
------ ----------- ----------- --------- --------- ----------------
100.00    0.222000                 27000      2000 total
";
        assert_eq!(
            parse_strace_summary(text),
            vec![
                ("recvfrom".to_owned(), 10_000),
                ("writev".to_owned(), 10_000),
                ("epoll_wait".to_owned(), 5_000),
                ("futex".to_owned(), 2_000),
            ]
        );
        assert!(parse_strace_summary("strace: Process 12 attached\n").is_empty());
    }

    #[test]
    fn http_response_heads() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.1 429 Too Many Requests\r\n"), Some(429));
        assert_eq!(parse_status_line("garbage"), None);
        assert_eq!(content_length("content-length: 13\r\n"), Some(13));
        assert_eq!(content_length("Content-Length:7"), Some(7));
        assert_eq!(content_length("content-type: text/plain\r\n"), None);
        assert_eq!(content_length("content-length: x\r\n"), None);
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(6518.4), "6,518");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(signed_thousands(3_210.0), "+3,210");
        assert_eq!(signed_thousands(-12.0), "−12");
        assert_eq!(signed_thousands(0.2), "0");
        assert_eq!(signed(2.0, 2), "+2.00");
        assert_eq!(signed(-0.5, 2), "−0.50");
        assert_eq!(signed(-0.001, 2), "0.00");
        assert_eq!(slug("jwt + rate limit per subject, valid token"), "jwt-rate-limit-per-subject-valid-token");
        assert_eq!(slug("/hello/json"), "hello-json");
        assert_eq!(code_name("http::header::map::HeaderMap<T>::try_insert2"), "`map::HeaderMap::try_insert2`");
    }

    #[test]
    fn median_round() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(median_index(&[5.0, 1.0]), Some(1));
        assert_eq!(median_index(&[]), None);
    }

    #[test]
    fn short_function_names() {
        assert_eq!(short_name("__memcpy_avx_unaligned_erms"), "__memcpy_avx_unaligned_erms");
        assert_eq!(short_name("http::header::map::HeaderMap<T>::try_insert2"), "map::HeaderMap::try_insert2");
        assert_eq!(
            short_name(
                "<microframework_http::middleware::observe::Observe<S> as tower_service::Service<http::request::Request<B>>>::call"
            ),
            "observe::Observe::call"
        );
        assert_eq!(
            short_name("core::ptr::drop_in_place<tower::util::oneshot::State<tower::util::BoxCloneSyncService<A,B>>>"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(short_name("<F as axum::handler::Handler<((),),S>>::call::{{closure}}"), "F::call::{{closure}}");
        assert_eq!(short_name("hashbrown::map::HashMap<K,V,S,A>::insert"), "map::HashMap::insert");
        assert_eq!(
            short_name("governor::state::keyed::<impl governor::state::RateLimiter<K,S,C,MW>>::check_key"),
            "state::RateLimiter::check_key"
        );
    }

    fn stack(name: &str) -> StackInfo {
        StackInfo {
            name: name.into(),
            about: format!("about {name}"),
            connect_info: false,
            token: false,
            layered: name != BARE && name != CONNECT_INFO,
        }
    }

    fn figures(instructions: f64, allocations: f64, bytes: f64) -> Figures {
        Figures { instructions, allocations, reallocations: 0.0, bytes }
    }

    fn report() -> ProfileReport {
        ProfileReport {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.0.0".into(),
                rustc: "rustc 1.95.0".into(),
                date: "Thu Jan  1 00:00:00 UTC 2026".into(),
            },
            valgrind: "valgrind-3.19.0".into(),
            strace: "strace -- version 6.1".into(),
            command: "cargo xtask bench profile".into(),
            requests: 2000,
            warmup: 200,
            rows: vec![
                StackRow {
                    info: stack(BARE),
                    routes: vec![figures(6_500.0, 14.0, 1808.0), figures(8_000.0, 19.0, 2646.0)],
                    over_bare: vec![],
                },
                StackRow {
                    info: StackInfo { connect_info: true, ..stack(CONNECT_INFO) },
                    routes: vec![figures(7_100.0, 16.0, 2100.0), figures(8_600.0, 21.0, 2946.0)],
                    over_bare: vec![FunctionCost { name: "malloc".into(), per_request: 100.0 }],
                },
                StackRow {
                    info: stack(PASS_THROUGH),
                    routes: vec![figures(7_400.0, 16.0, 2000.0), figures(8_900.0, 21.0, 2838.0)],
                    over_bare: vec![],
                },
                StackRow {
                    info: stack("request id"),
                    routes: vec![figures(9_700.0, 16.0, 2000.0), figures(11_200.0, 21.0, 2838.0)],
                    over_bare: vec![
                        FunctionCost {
                            name: "microframework_core::request_id::RequestId::generate".into(),
                            per_request: 227.4,
                        },
                        FunctionCost { name: "_int_free".into(), per_request: 200.0 },
                    ],
                },
                StackRow {
                    info: StackInfo { connect_info: true, ..stack(FULL) },
                    routes: vec![
                        Figures { instructions: 23_148.0, allocations: 26.0, reallocations: 1.0, bytes: 4721.0 },
                        figures(24_000.0, 31.0, 5567.0),
                    ],
                    over_bare: vec![],
                },
            ],
            top_in_process: vec![FunctionCost { name: "__memcpy_avx_unaligned_erms".into(), per_request: 2_553.0 }],
            top_server: vec![],
            servers: vec![
                ServerRow {
                    target: BASELINE.into(),
                    instructions: vec![vec![12_600.0], vec![13_000.0]],
                    syscalls: vec![("recvfrom".into(), 1.0), ("writev".into(), 1.0)],
                },
                ServerRow {
                    target: SERVICE.into(),
                    instructions: vec![vec![29_500.0, 29_000.0, 28_000.0], vec![30_000.0]],
                    syscalls: vec![
                        ("recvfrom".into(), 1.0),
                        ("writev".into(), 1.0),
                        ("futex".into(), 0.25),
                        ("mprotect".into(), 0.0001),
                    ],
                },
            ],
            server_requests: 2000,
            server_rounds: 3,
            syscall_requests: 20000,
            connections: 4,
            callgrind_dir: "target/bench-profile".into(),
        }
    }

    #[test]
    fn renders_deltas_ratios_and_tables() {
        let r = report();
        let ratios = r.full_ratios();
        assert!((ratios[0].unwrap() - 23_148.0 / 6_500.0).abs() < 1e-9);
        let md = r.render();
        assert!(md.contains("| bare axum | 6,500 | 1.00 | 0 | – | 8,000 | 1.00 | 0 |"), "{md}");
        assert!(md.contains("| pass-through layer | 7,400 | 1.14 | +900 | – | 8,900 | 1.11 | +900 |"), "{md}");
        // Own cost: over bare axum less the pass-through layer's 900.
        assert!(md.contains("| request id | 9,700 | 1.49 | +3,200 | +2,300 | 11,200 | 1.40 | +3,200 |"), "{md}");
        // Less the pass-through layer's 900 and the ConnectInfo extension's 600.
        assert!(md.contains("| service router | 23,148 | 3.56 | +16,648 | +15,148 |"), "{md}");
        assert!(
            md.contains("| request id | +3,200 | `request_id::RequestId::generate` +227, `_int_free` +200 |"),
            "{md}"
        );
        assert!(md.contains("| connect info | +600 | `malloc` +100 |"), "{md}");
        assert!(!md.contains("| pass-through layer | +900 |"), "rows without functions are left out: {md}");
        assert!(md.contains("costs 3.56× the instructions of bare axum on `/hello` and 3.00× on `/users/42`"), "{md}");
        assert!(md.contains("| request id | 16.00 | +2.00 | 2,000 | +192 | 21.00 | +2.00 | 2,838 | +192 |"), "{md}");
        assert!(md.contains("| service router | 26.00 (+1.00 realloc) | +13.00 | 4,721 | +2,913 |"), "{md}");
        assert!(
            md.contains(
                "| framework-hello | 29,000 (28,000–29,500) | 2.30 | 30,000 | 2.31 | 2.25 | recvfrom 1.00, writev 1.00, \
                 futex 0.25 |"
            ),
            "{md}"
        );
        assert!(md.contains("| `__memcpy_avx_unaligned_erms` | 2,553 | 11.0% |"), "{md}");
        assert!(!md.contains("whole server\n"), "no empty table for the server's functions: {md}");
        assert!(md.contains("- request id: about request id"), "{md}");
        assert!(md.contains("- Command: `cargo xtask bench profile`"), "{md}");
    }

    #[test]
    fn renders_without_servers() {
        let mut r = report();
        r.servers.clear();
        let md = r.render();
        assert!(!md.contains("Whole servers over loopback"), "{md}");
        assert!(!md.contains("- Whole servers:"), "{md}");
        assert!(md.contains("#### Allocations per request"), "{md}");
    }
}
