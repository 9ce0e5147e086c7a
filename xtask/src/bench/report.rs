//! The markdown report and its placement between markers in a file.

use std::fmt::Write as _;

use anyhow::bail;

use super::{Machine, median};

/// Start marker of the HTTP benchmark section in a markdown file.
#[cfg(test)]
const HTTP_START: &str = "<!-- bench:http:start -->";
/// End marker of the HTTP benchmark section in a markdown file.
#[cfg(test)]
const HTTP_END: &str = "<!-- bench:http:end -->";

/// The per-round measurements of one target on one route.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadRow {
    pub(crate) target: String,
    pub(crate) route: String,
    pub(crate) baseline: bool,
    pub(crate) rps: Vec<f64>,
    pub(crate) p50_us: Vec<f64>,
    pub(crate) p99_us: Vec<f64>,
    pub(crate) errors: u64,
}

/// The per-round process measurements of one target.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcRow {
    pub(crate) target: String,
    pub(crate) startup_ms: Vec<f64>,
    pub(crate) idle_rss_kib: Vec<f64>,
    pub(crate) loaded_rss_kib: Vec<f64>,
    pub(crate) shutdown_ms: Vec<f64>,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct HttpReport {
    pub(crate) machine: Machine,
    pub(crate) wrk_version: String,
    pub(crate) command: String,
    /// Human description of the load, e.g. `1 wrk thread, 64 connections, 10 s per run`.
    pub(crate) load: String,
    pub(crate) rounds: u32,
    /// Highest share (0–1) of the machine's CPU used by other processes while the servers idled.
    pub(crate) background_cpu: f64,
    pub(crate) load_rows: Vec<LoadRow>,
    pub(crate) proc_rows: Vec<ProcRow>,
    /// The route the targets are checked on (`--check-target`); `None` to skip the check.
    pub(crate) check_route: Option<String>,
}

/// Result of one target criterion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Check {
    pub(crate) target: String,
    pub(crate) criterion: String,
    pub(crate) pass: bool,
    pub(crate) measured: String,
}

/// Background CPU use (share of all cores) above which a run is flagged as noisy.
pub(crate) const BUSY_WARNING: f64 = 0.10;
/// Minimum share of the baseline's requests/s.
const TARGET_RPS_RATIO: f64 = 0.90;
/// Maximum p99 latency as a multiple of the baseline's.
const TARGET_P99_RATIO: f64 = 1.2;

impl HttpReport {
    fn baseline_for(&self, route: &str) -> Option<&LoadRow> {
        self.load_rows.iter().find(|r| r.baseline && r.route == route)
    }

    /// The target checks: ≥ 90% of baseline requests/s and p99 ≤ 1.2× baseline on `check_route`.
    pub(crate) fn checks(&self) -> Vec<Check> {
        let Some(route) = &self.check_route else { return Vec::new() };
        let Some(base) = self.baseline_for(route) else { return Vec::new() };
        let mut checks = Vec::new();
        for row in self.load_rows.iter().filter(|r| !r.baseline && &r.route == route) {
            if let (Some(rps), Some(base_rps)) = (median(&row.rps), median(&base.rps)) {
                let ratio = rps / base_rps;
                checks.push(Check {
                    target: row.target.clone(),
                    criterion: format!("requests/s ≥ {:.0}% of baseline on {route}", TARGET_RPS_RATIO * 100.0),
                    pass: ratio >= TARGET_RPS_RATIO,
                    measured: format!("{:.1}%", ratio * 100.0),
                });
            }
            if let (Some(p99), Some(base_p99)) = (median(&row.p99_us), median(&base.p99_us)) {
                let ratio = p99 / base_p99;
                checks.push(Check {
                    target: row.target.clone(),
                    criterion: format!("p99 ≤ {TARGET_P99_RATIO}× baseline on {route}"),
                    pass: ratio <= TARGET_P99_RATIO,
                    measured: format!("{ratio:.2}×"),
                });
            }
        }
        checks
    }

    /// Renders the report as markdown (no markers).
    pub(crate) fn render(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let rounds =
            if self.rounds == 1 { "1 round".to_owned() } else { format!("{} rounds, median shown", self.rounds) };
        let _ = writeln!(out, "### HTTP: MicroFramework (framework-hello) vs bare axum (baseline-axum)\n");
        let _ = writeln!(out, "- Date: {}", m.date);
        let _ = writeln!(out, "- Machine: {}, {} cores, kernel {}", m.cpu, m.cores, m.kernel);
        let _ = writeln!(out, "- Toolchain: {}, `--release` profile of the workspace", m.rustc);
        let _ = writeln!(out, "- Load: {}, {}; {rounds}", self.wrk_version, self.load);
        let _ = writeln!(
            out,
            "- Background CPU use while the servers idled: up to {:.0}% of the machine{}",
            self.background_cpu * 100.0,
            if self.background_cpu > BUSY_WARNING { " (busy machine: numbers are noisy)" } else { "" }
        );
        let _ = writeln!(out, "- Command: `{}`\n", self.command);

        let _ = writeln!(
            out,
            "| target | route | req/s | spread | p50 | p99 | req/s vs baseline | p99 vs baseline | errors |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.load_rows {
            let base = self.baseline_for(&row.route);
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
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
                row.target,
                row.route,
                rps.map(|v| format!("{v:.0}")).unwrap_or_else(dash),
                spread(&row.rps),
                median(&row.p50_us).map(fmt_latency).unwrap_or_else(dash),
                p99.map(fmt_latency).unwrap_or_else(dash),
                rps_ratio.unwrap_or_else(dash),
                p99_ratio.unwrap_or_else(dash),
                row.errors,
            );
        }

        write_process_table(
            &mut out,
            "start-up to ready",
            self.proc_rows.iter().map(|r| ProcessSamples {
                target: &r.target,
                startup_ms: &r.startup_ms,
                idle_rss_kib: &r.idle_rss_kib,
                loaded_rss_kib: &r.loaded_rss_kib,
                shutdown_ms: &r.shutdown_ms,
            }),
        );

        let checks = self.checks();
        if !checks.is_empty() {
            let _ = writeln!(out, "\nTargets (informative):\n");
            for c in &checks {
                let verdict = if c.pass { "PASS" } else { "MISS" };
                let _ = writeln!(out, "- {verdict}: {} {} (measured {})", c.target, c.criterion, c.measured);
            }
        }

        let _ = writeln!(
            out,
            "\n<sub>req/s, p50 and p99 are wrk's numbers (median over rounds); spread is (max − min) / median \
             of req/s across rounds. Start-up is spawn → first 200 on `/health/ready` (polled every 1 ms); \
             idle RSS is VmRSS 1 s after ready; loaded RSS is the maximum VmRSS sampled every 100 ms under \
             load. wrk and the server share the machine's cores.</sub>"
        );
        out
    }
}

pub(crate) fn dash() -> String {
    "–".to_owned()
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// `(max − min) / median` of the values as a percentage, or `–` for fewer than two values.
pub(crate) fn spread(values: &[f64]) -> String {
    if values.len() < 2 {
        return dash();
    }
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    match median(values) {
        Some(m) if m > 0.0 => format!("{:.1}%", (max - min) / m * 100.0),
        _ => dash(),
    }
}

/// Microseconds as `812 µs` or `1.25 ms` (or seconds past 10 s).
pub(crate) fn fmt_latency(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// One target's per-round process figures, for [`write_process_table`].
pub(crate) struct ProcessSamples<'a> {
    pub(crate) target: &'a str,
    pub(crate) startup_ms: &'a [f64],
    pub(crate) idle_rss_kib: &'a [f64],
    pub(crate) loaded_rss_kib: &'a [f64],
    pub(crate) shutdown_ms: &'a [f64],
}

/// Appends the table of start-up time (`startup` names it in the header), idle and loaded RSS and
/// SIGTERM to exit, the median of each over the rounds, one line per target.
pub(crate) fn write_process_table<'a>(
    out: &mut String,
    startup: &str,
    rows: impl IntoIterator<Item = ProcessSamples<'a>>,
) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n| target | {startup} (ms) | idle RSS (MiB) | loaded RSS (MiB) | SIGTERM to exit (ms) |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let mib = |v: &[f64]| median(v).map(|k| format!("{:.1}", k / 1024.0)).unwrap_or_else(dash);
    let ms = |v: &[f64]| median(v).map(|x| format!("{x:.1}")).unwrap_or_else(dash);
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.target,
            ms(row.startup_ms),
            mib(row.idle_rss_kib),
            mib(row.loaded_rss_kib),
            ms(row.shutdown_ms),
        );
    }
}

/// Puts `section` between the `<!-- bench:{name}:start -->` and `<!-- bench:{name}:end -->`
/// markers in `existing` (replacing what was there), appends the markers and section when the
/// file has none, or creates a new document when there is no file.
pub(crate) fn replace_marked(existing: Option<&str>, name: &str, section: &str) -> anyhow::Result<String> {
    let (start_marker, end_marker) = (format!("<!-- bench:{name}:start -->"), format!("<!-- bench:{name}:end -->"));
    let block = format!("{start_marker}\n{}\n{end_marker}", section.trim_end_matches('\n'));
    let Some(text) = existing else {
        return Ok(format!(
            "# Benchmarks\n\nGenerated by `cargo xtask bench ... --write <this file>`; each section between its \
             markers is replaced on each run.\n\n{block}\n"
        ));
    };
    match (text.find(&start_marker), text.find(&end_marker)) {
        (Some(start), Some(end)) if start < end => {
            let after = &text[end + end_marker.len()..];
            Ok(format!("{}{block}{after}", &text[..start]))
        }
        (None, None) => {
            let body = text.trim_end_matches('\n');
            let sep = if body.is_empty() { "" } else { "\n\n" };
            Ok(format!("{body}{sep}{block}\n"))
        }
        _ => bail!("the file has a misplaced or unmatched `{start_marker}` / `{end_marker}` marker: fix it by hand"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `bench:http` section, as `bench http --write` replaces it.
    fn replace_section(existing: Option<&str>, section: &str) -> anyhow::Result<String> {
        replace_marked(existing, "http", section)
    }

    fn report(service_rps: f64, service_p99: f64) -> HttpReport {
        HttpReport {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.0.0".into(),
                rustc: "rustc 1.95.0".into(),
                date: "Thu Jan  1 00:00:00 UTC 2026".into(),
            },
            wrk_version: "wrk 4.1.0".into(),
            command: "cargo xtask bench http".into(),
            load: "1 wrk thread, 64 connections, 10 s per run".into(),
            rounds: 3,
            background_cpu: 0.02,
            load_rows: vec![
                LoadRow {
                    target: "baseline-axum".into(),
                    route: "/hello".into(),
                    baseline: true,
                    rps: vec![100_000.0, 90_000.0, 110_000.0],
                    p50_us: vec![500.0; 3],
                    p99_us: vec![1000.0; 3],
                    errors: 0,
                },
                LoadRow {
                    target: "users-service".into(),
                    route: "/hello".into(),
                    baseline: false,
                    rps: vec![service_rps; 3],
                    p50_us: vec![600.0; 3],
                    p99_us: vec![service_p99; 3],
                    errors: 0,
                },
            ],
            proc_rows: vec![ProcRow {
                target: "baseline-axum".into(),
                startup_ms: vec![3.0],
                idle_rss_kib: vec![2048.0],
                loaded_rss_kib: vec![4096.0],
                shutdown_ms: vec![1.0],
            }],
            check_route: Some("/hello".into()),
        }
    }

    #[test]
    fn renders_tables_ratios_and_checks() {
        let md = report(92_000.0, 1500.0).render();
        assert!(
            md.contains("| baseline-axum | `/hello` | 100000 | 20.0% | 500 µs | 1.00 ms | 100% | 1.00× | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| users-service | `/hello` | 92000 | 0.0% | 600 µs | 1.50 ms | 92.0% | 1.50× | 0 |"),
            "{md}"
        );
        assert!(md.contains("| baseline-axum | 3.0 | 2.0 | 4.0 | 1.0 |"), "{md}");
        assert!(md.contains("- Background CPU use while the servers idled: up to 2% of the machine\n"), "{md}");
        assert!(md.contains("- PASS: users-service requests/s ≥ 90% of baseline on /hello (measured 92.0%)"), "{md}");
        assert!(md.contains("- MISS: users-service p99 ≤ 1.2× baseline on /hello (measured 1.50×)"), "{md}");
    }

    #[test]
    fn checks_pass_and_miss_at_the_thresholds() {
        let pass = report(90_000.0, 1200.0).checks();
        assert!(pass.iter().all(|c| c.pass), "{pass:?}");
        let miss = report(89_999.0, 1201.0).checks();
        assert_eq!(miss.len(), 2);
        assert!(miss.iter().all(|c| !c.pass), "{miss:?}");
    }

    #[test]
    fn no_checks_without_check_route() {
        let mut r = report(1.0, 1.0);
        r.check_route = None;
        assert!(r.checks().is_empty());
        assert!(!r.render().contains("Targets"));
    }

    #[test]
    fn creates_a_document_when_there_is_no_file() {
        let out = replace_section(None, "TABLE\n").unwrap();
        assert!(out.starts_with("# Benchmarks\n"));
        assert!(out.ends_with(&format!("{HTTP_START}\nTABLE\n{HTTP_END}\n")), "{out}");
    }

    #[test]
    fn replaces_only_between_the_markers() {
        let before = format!("# Bench\n\nintro\n\n{HTTP_START}\nold\nlines\n{HTTP_END}\n\n## gRPC\n\nkept\n");
        let out = replace_section(Some(&before), "new\n").unwrap();
        assert_eq!(out, format!("# Bench\n\nintro\n\n{HTTP_START}\nnew\n{HTTP_END}\n\n## gRPC\n\nkept\n"));
        // Idempotent.
        assert_eq!(replace_section(Some(&out), "new\n").unwrap(), out);
    }

    #[test]
    fn appends_the_markers_when_absent() {
        let out = replace_section(Some("# Bench\n\ntext\n\n\n"), "new").unwrap();
        assert_eq!(out, format!("# Bench\n\ntext\n\n{HTTP_START}\nnew\n{HTTP_END}\n"));
        let out = replace_section(Some(""), "new").unwrap();
        assert_eq!(out, format!("{HTTP_START}\nnew\n{HTTP_END}\n"));
    }

    #[test]
    fn rejects_unmatched_markers() {
        assert!(replace_section(Some(&format!("{HTTP_START}\nx\n")), "new").is_err());
        assert!(replace_section(Some(&format!("{HTTP_END}\nx\n{HTTP_START}\n")), "new").is_err());
    }

    #[test]
    fn latency_formatting() {
        assert_eq!(fmt_latency(812.4), "812 µs");
        assert_eq!(fmt_latency(1250.0), "1.25 ms");
        assert_eq!(fmt_latency(12_000_000.0), "12.00 s");
    }
}
