//! `cargo xtask bench gen`: how fast `microframework new` is, how long a generated service takes
//! to build (clean and incremental) and how big its binary is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::{Machine, command_line, median};
use crate::workspace_root;

/// Options of `cargo xtask bench gen`.
#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// How many times to time `microframework new`.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Skip the clean release build (the slowest step; binary size is then not reported).
    #[arg(long)]
    no_release: bool,
    /// Replace the generator section of this markdown file (relative to the workspace root).
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds the CLI (`microframework`) in release and returns the path of the executable.
pub(crate) fn build_cli(root: &Path) -> anyhow::Result<PathBuf> {
    let exes = super::release_build(root, &["-p", "microframework-cli", "--bin", "microframework"])?;
    exes.get("microframework").cloned().context("the build produced no `microframework`")
}

/// Runs `cmd`, failing with its output when it fails; returns the wall time.
pub(crate) fn timed(cmd: &mut Command, what: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output().with_context(|| format!("cannot run {what}"))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!("{what} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(elapsed)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m {:02}s", (s / 60.0) as u64, s as u64 % 60)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs the benchmark and prints (and optionally writes) the report.
pub(crate) fn run(args: &GenArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let cli = build_cli(&root)?;

    let scratch = tempfile::Builder::new().prefix("xtask-bench-gen-").tempdir()?;
    let mut new_times = Vec::new();
    for i in 0..args.runs.max(1) {
        let dir = scratch.path().join(format!("run-{i}"));
        std::fs::create_dir_all(&dir)?;
        let d =
            timed(Command::new(&cli).args(["new", "bench-svc", "--no-git"]).current_dir(&dir), "microframework new")?;
        new_times.push(d.as_secs_f64());
    }
    let new_median = median(&new_times).unwrap_or(0.0);
    let new_min = new_times.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!("== microframework new: median {:.0} ms", new_median * 1000.0);

    // Clean and incremental debug builds in a fresh target directory (nothing shared).
    let service = scratch.path().join("run-0/bench-svc");
    let target = scratch.path().join("target");
    let build = |extra: &[&str], what: &str| -> anyhow::Result<Duration> {
        eprintln!("== {what}");
        timed(
            Command::new(cargo()).arg("build").args(extra).current_dir(&service).env("CARGO_TARGET_DIR", &target),
            what,
        )
    };
    let clean_debug = build(&[], "clean debug build")?;
    touch(&service.join("src/handlers/users.rs"))?;
    let incremental_debug = build(&[], "incremental debug build (a handler edited)")?;
    let (clean_release, size, stripped) = if args.no_release {
        (None, None, None)
    } else {
        let d = build(&["--release"], "clean release build")?;
        let bin = target.join("release/bench-svc");
        let size = std::fs::metadata(&bin)?.len();
        (Some(d), Some(size), super::stripped_size(&bin, scratch.path()))
    };

    let machine = Machine::describe();
    let mut md = String::new();
    md.push_str("### Generator: `microframework new` and the generated service's build\n\n");
    md.push_str(&format!(
        "{} · {} cores · kernel {} · {} · {}\n\nCommand: `{}`. The service is `microframework new bench-svc` (REST, SQLite, no auth) built in a fresh target directory, so the clean build compiles every dependency.\n\n",
        machine.cpu, machine.cores, machine.kernel, machine.rustc, machine.date, command_line()
    ));
    md.push_str("| measure | value |\n|---|---:|\n");
    md.push_str(&format!("| `microframework new` (release CLI, median of {}; includes rustfmt and the lockfile) | {:.0} ms (min {:.0} ms) |\n", new_times.len(), new_median * 1000.0, new_min * 1000.0));
    md.push_str(&format!("| clean `cargo build` (debug) | {} |\n", secs(clean_debug)));
    md.push_str(&format!(
        "| incremental `cargo build` after editing a handler (debug) | {} |\n",
        secs(incremental_debug)
    ));
    if let (Some(d), Some(size)) = (clean_release, size) {
        md.push_str(&format!("| clean `cargo build --release` | {} |\n", secs(d)));
        md.push_str(&format!("| release binary (with line tables) | {} |\n", mib(size)));
        if let Some(s) = stripped {
            md.push_str(&format!("| release binary, stripped | {} |\n", mib(s)));
        }
    }
    println!("{md}");
    if let Some(path) = &args.write {
        super::write_section(&root, path, "gen", &md)?;
    }
    Ok(())
}

fn touch(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    std::fs::write(path, format!("{text}\n"))?;
    Ok(())
}
