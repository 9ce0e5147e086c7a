//! `cargo xtask bench layers`: our HTTP middleware layers (`microframework_http::middleware`)
//! vs the tower-http layer for the same concern (timeout, catch-panic, body limit, request id),
//! measured in the same run.
//!
//! The measuring program is `benches/servers/src/bin/layers.rs`, built in release: for each case
//! it builds two stacks over the same trivial axum router, ours and tower-http's configured to
//! the same behaviour as far as it goes (and, for most cases, the router without the layer),
//! checks that both answer alike, then drives each in-process with many requests, alternating the
//! stacks (ours, tower-http, no layer, ours, …) chunk by chunk in every round. It prints the ns/request of every round; this
//! module turns them into the report. Nothing here asserts timings: the verdict column only
//! tells whether tower-http's stack was slower (or faster) in every round.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use super::report::{dash, spread};
use super::{Machine, command_line, load_average, median};
use crate::workspace_root;

const PROGRAM: &str = "layers";

/// Options of `cargo xtask bench layers`.
#[derive(Debug, Args)]
pub(crate) struct LayersArgs {
    /// Rounds (each runs every stack of every case once); the report shows the median.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(5..))]
    rounds: u32,
    /// Requests per stack in each round.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Requests timed together: each round alternates the stacks of a case chunk by chunk and
    /// keeps the median chunk.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    chunk: u32,
    /// Requests per stack before the first round.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..))]
    warmup: u32,
    /// Also write the report between `<!-- bench:layers:start -->` and `<!-- bench:layers:end -->`
    /// in this markdown file (relative paths are from the workspace root; created if absent).
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
    /// Skip `cargo build --release` and use the program already in the target directory.
    #[arg(long)]
    no_build: bool,
}

/// One case as the measuring program reports it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CaseResult {
    pub(crate) name: String,
    pub(crate) ours: String,
    pub(crate) theirs: String,
    pub(crate) ours_ns: Vec<f64>,
    pub(crate) theirs_ns: Vec<f64>,
    /// The router without the layer; empty when the case has no such stack.
    pub(crate) bare_ns: Vec<f64>,
    /// The control: our stack on both sides.
    #[serde(default)]
    pub(crate) control: bool,
}

/// The measuring program's output.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Output {
    pub(crate) rounds: u32,
    pub(crate) requests: u32,
    pub(crate) chunk: u32,
    pub(crate) warmup: u32,
    pub(crate) cases: Vec<CaseResult>,
}

/// Which stack was faster, judged by the rounds (each round ran both back to back) against the
/// control's rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// tower-http's stack was slower in every round, by more than the control ever measured.
    OursFaster,
    /// tower-http's stack was faster in every round, by more than the control ever measured.
    TowerHttpFaster,
    /// The rounds disagree, or stay within the control's range.
    WithinNoise,
    /// The control itself.
    Control,
}

impl CaseResult {
    /// tower-http's ns/request over ours, round by round.
    pub(crate) fn round_ratios(&self) -> Vec<f64> {
        self.ours_ns.iter().zip(&self.theirs_ns).filter(|(o, _)| **o > 0.0).map(|(o, t)| t / o).collect()
    }

    /// The lowest and highest per-round ratio.
    fn ratio_range(&self) -> Option<(f64, f64)> {
        let ratios = self.round_ratios();
        let lo = ratios.iter().copied().reduce(f64::min)?;
        let hi = ratios.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }

    /// The verdict, with the range of ratios the control measured (the same stack on both sides)
    /// as the noise band; without a control, the band is the single ratio 1.
    pub(crate) fn verdict(&self, control: Option<&CaseResult>) -> Verdict {
        if self.control {
            return Verdict::Control;
        }
        let (noise_lo, noise_hi) = control.and_then(CaseResult::ratio_range).unwrap_or((1.0, 1.0));
        match self.ratio_range() {
            Some((lo, _)) if lo > noise_hi.max(1.0) => Verdict::OursFaster,
            Some((_, hi)) if hi < noise_lo.min(1.0) => Verdict::TowerHttpFaster,
            _ => Verdict::WithinNoise,
        }
    }
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct LayersReport {
    pub(crate) machine: Machine,
    pub(crate) command: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) output: Output,
}

impl LayersReport {
    /// Renders the report as markdown (no markers).
    pub(crate) fn render(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.machine;
        let o = &self.output;
        let mut out = String::new();
        let _ = writeln!(out, "### HTTP middleware layers: ours vs tower-http (in-process)\n");
        let _ = writeln!(out, "- Date: {}", m.date);
        let _ = writeln!(out, "- Machine: {}, {} cores, kernel {}", m.cpu, m.cores, m.kernel);
        let _ = writeln!(out, "- Toolchain: {}, `--release` profile of the workspace", m.rustc);
        let _ = writeln!(
            out,
            "- Load: {} requests per stack per round in chunks of {}, the stacks of a case alternating chunk by \
             chunk, after {} of warm-up; one current-thread tokio runtime; {} rounds, median shown",
            o.requests, o.chunk, o.warmup, o.rounds
        );
        let _ = writeln!(
            out,
            "- Machine load: load average {} before, {} after (1/5/15 min)",
            self.load_before, self.load_after
        );
        let _ = writeln!(out, "- Command: `{}`\n", self.command);

        let _ = writeln!(
            out,
            "| case | ours (ns/request) | spread | tower-http (ns/request) | spread | tower-http / ours (rounds) | \
             layer cost, ours / tower-http | verdict |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
        let control = o.cases.iter().find(|c| c.control);
        for c in &o.cases {
            let ours = median(&c.ours_ns);
            let theirs = median(&c.theirs_ns);
            let ratio = match (median(&c.round_ratios()), c.ratio_range()) {
                (Some(r), Some((lo, hi))) => format!("{r:.2} ({lo:.2}–{hi:.2})"),
                _ => dash(),
            };
            let cost = match (ours, theirs, median(&c.bare_ns)) {
                (Some(o), Some(t), Some(b)) => format!("{:.0} / {:.0} ns", o - b, t - b),
                _ => dash(),
            };
            let verdict = match c.verdict(control) {
                Verdict::OursFaster => "ours faster in every round",
                Verdict::TowerHttpFaster => "tower-http faster in every round",
                Verdict::WithinNoise => "within noise",
                Verdict::Control => "(control: the noise band)",
            };
            let ns = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(dash);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {ratio} | {cost} | {verdict} |",
                c.name,
                ns(ours),
                spread(&c.ours_ns),
                ns(theirs),
                spread(&c.theirs_ns),
            );
        }
        let _ = writeln!(out, "\nThe stacks of each case:\n");
        for c in &o.cases {
            let _ = writeln!(out, "- {}: ours `{}`; tower-http `{}`", c.name, c.ours, c.theirs);
        }
        let _ = writeln!(
            out,
            "\n<sub>Each stack wraps the same axum router (`POST /` reads the body and answers `ok`) with \
             `Router::layer`, as the default stack is applied; a request is a real `http::Request` with a 64-byte \
             body (2 KiB declared for the 413 case), sent with `ready` + `call` on a clone of the router, and its \
             response body is read to the end, so the figures include the router and the handler. A round's \
             figure is the median ns/request of the stack's chunks in that round; spread is (max − min) / median \
             of the rounds' figures. tower-http / ours is the median of the per-round ratios (each \
             round ran the two stacks back to back), with their range; the verdict says whether every round agreed. \
             Layer cost is the stack's median minus that of the router without the layer (measured in the same \
             rounds; – where the case has none). The control row has our catch-panic stack on both sides: its range \
             of ratios is what the method measures when there is no difference, and a verdict other than \
             \"within noise\" needs every round of the case outside that range (and on the same side of 1).</sub>"
        );
        out
    }
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub(crate) fn run(args: &LayersArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let program = if args.no_build {
        super::prebuilt(&root, PROGRAM, false)?
    } else {
        let exes = super::release_build(&root, &["-p", "bench-servers", "--bin", PROGRAM])?;
        exes.get(PROGRAM).cloned().with_context(|| format!("the build produced no `{PROGRAM}`"))?
    };
    let load_before = load_average();
    eprintln!(
        "== {} --rounds {} --requests {} --chunk {} --warmup {}",
        program.display(),
        args.rounds,
        args.requests,
        args.chunk,
        args.warmup
    );
    let out = Command::new(&program)
        .args(["--rounds", &args.rounds.to_string()])
        .args(["--requests", &args.requests.to_string()])
        .args(["--chunk", &args.chunk.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!("{} failed ({}); see its errors above", program.display(), out.status);
    }
    let output: Output = super::parse_last_json_line(&String::from_utf8_lossy(&out.stdout), PROGRAM)?;
    let report = LayersReport {
        machine: Machine::describe(),
        command: command_line(),
        load_before,
        load_after: load_average(),
        output,
    };
    let md = report.render();
    println!("{md}");
    if let Some(path) = &args.write {
        super::write_section(&root, path, "layers", &md)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, ours: &[f64], theirs: &[f64], bare: &[f64]) -> CaseResult {
        CaseResult {
            name: name.into(),
            ours: "Ours".into(),
            theirs: "Theirs".into(),
            ours_ns: ours.to_vec(),
            theirs_ns: theirs.to_vec(),
            bare_ns: bare.to_vec(),
            control: false,
        }
    }

    fn control(ours: &[f64], theirs: &[f64]) -> CaseResult {
        CaseResult { control: true, ..case("control", ours, theirs, &[]) }
    }

    #[test]
    fn verdict_needs_every_round_to_agree() {
        assert_eq!(case("a", &[100.0, 110.0], &[120.0, 111.0], &[]).verdict(None), Verdict::OursFaster);
        assert_eq!(case("b", &[100.0, 110.0], &[90.0, 109.0], &[]).verdict(None), Verdict::TowerHttpFaster);
        assert_eq!(case("c", &[100.0, 110.0], &[120.0, 100.0], &[]).verdict(None), Verdict::WithinNoise);
        assert_eq!(case("d", &[], &[], &[]).verdict(None), Verdict::WithinNoise);
    }

    #[test]
    fn verdict_needs_every_round_outside_the_control_range() {
        // The control measured ratios from 0.98 to 1.02.
        let ctl = control(&[100.0, 100.0], &[98.0, 102.0]);
        assert_eq!(ctl.verdict(Some(&ctl)), Verdict::Control);
        assert_eq!(case("a", &[100.0, 100.0], &[101.0, 103.0], &[]).verdict(Some(&ctl)), Verdict::WithinNoise);
        assert_eq!(case("b", &[100.0, 100.0], &[103.0, 105.0], &[]).verdict(Some(&ctl)), Verdict::OursFaster);
        assert_eq!(case("c", &[100.0, 100.0], &[99.0, 97.0], &[]).verdict(Some(&ctl)), Verdict::WithinNoise);
        assert_eq!(case("d", &[100.0, 100.0], &[97.0, 96.0], &[]).verdict(Some(&ctl)), Verdict::TowerHttpFaster);
        // A control entirely above 1 still leaves a case below 1 to be judged against 1.
        let high = control(&[100.0, 100.0], &[101.0, 102.0]);
        assert_eq!(case("e", &[100.0, 100.0], &[99.0, 99.5], &[]).verdict(Some(&high)), Verdict::TowerHttpFaster);
    }

    #[test]
    fn renders_medians_ratios_and_layer_costs() {
        let report = LayersReport {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.0.0".into(),
                rustc: "rustc 1.95.0".into(),
                date: "Thu Jan  1 00:00:00 UTC 2026".into(),
            },
            command: "cargo xtask bench layers".into(),
            load_before: "0.10 0.20 0.30".into(),
            load_after: "1.00 0.50 0.40".into(),
            output: Output {
                rounds: 3,
                requests: 1000,
                chunk: 100,
                warmup: 100,
                cases: vec![
                    control(&[800.0, 800.0, 800.0], &[790.0, 800.0, 810.0]),
                    case("timeout", &[800.0, 900.0, 1000.0], &[1200.0, 1350.0, 1500.0], &[700.0, 700.0, 700.0]),
                    case("413", &[1000.0, 1000.0, 1000.0], &[900.0, 1100.0, 1000.0], &[]),
                ],
            },
        };
        let md = report.render();
        assert!(
            md.contains(
                "| timeout | 900 | 22.2% | 1350 | 22.2% | 1.50 (1.50–1.50) | 200 / 650 ns | ours faster in every round |"
            ),
            "{md}"
        );
        assert!(md.contains("| 413 | 1000 | 0.0% | 1000 | 20.0% | 1.00 (0.90–1.10) | – | within noise |"), "{md}");
        assert!(
            md.contains("| control | 800 | 0.0% | 800 | 2.5% | 1.00 (0.99–1.01) | – | (control: the noise band) |"),
            "{md}"
        );
        assert!(md.contains("- timeout: ours `Ours`; tower-http `Theirs`"), "{md}");
        assert!(md.contains("- Command: `cargo xtask bench layers`"), "{md}");
    }
}
