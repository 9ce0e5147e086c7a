//! `microframework doctor`: is the toolchain ready, is the service's configuration valid, and
//! can the service reach its dependencies?
//!
//! The dependency check runs the service itself (`cargo run -- --check-dependencies`), so that
//! each plugin probes what it connects to with the service's own drivers and configuration: the
//! CLI compiles no database driver or TLS stack of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;

use crate::Failure;

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The service directory (default: the current directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The environment whose configuration to check (default: APP_ENV or dev).
    #[arg(long, value_name = "ENV")]
    env: Option<String>,
}

const MIN_RUST: (u32, u32) = (1, 94);

fn version_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn rust_version_ok(line: &str) -> bool {
    let Some(v) = line.split_whitespace().nth(1) else { return false };
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= MIN_RUST
}

pub(crate) fn run(args: DoctorArgs) -> Result<(), Failure> {
    let mut failures = 0;
    let mut report = |ok: bool, what: &str, detail: String| {
        out!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures += 1;
        }
    };
    match version_of("rustc", &["--version"]) {
        Some(v) => report(rust_version_ok(&v), "rustc", format!("{v} (need {}.{} or newer)", MIN_RUST.0, MIN_RUST.1)),
        None => report(false, "rustc", "not found: install Rust from https://rustup.rs".into()),
    }
    for (tool, args, hint) in [
        ("cargo", &["--version"][..], "comes with Rust"),
        ("rustfmt", &["--version"][..], "rustup component add rustfmt"),
        ("cargo", &["clippy", "--version"][..], "rustup component add clippy"),
        ("git", &["--version"][..], "install git"),
    ] {
        let label = if args[0] == "clippy" { "clippy" } else { tool };
        match version_of(tool, args) {
            Some(v) => report(true, label, v),
            None => report(false, label, format!("not found: {hint}")),
        }
    }

    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let configs = dir.join("configs");
    if configs.join("config.yaml").is_file() {
        let mut sources = microframework_core::ConfigSources::new().dir(&configs);
        if let Some(env) = &args.env {
            sources = sources.env(env.clone());
        }
        match microframework_core::Config::load(&sources) {
            Err(e) => report(false, "configuration", e.to_string()),
            Ok(config) => {
                report(true, "configuration", format!("{} is valid ({} environment)", configs.display(), config.env()));
                check_dependencies(&dir, args.env.as_deref(), &mut report);
            }
        }
    } else {
        out!(
            "skip dependencies: no configs/config.yaml in {} (run doctor inside a service, or pass --dir)",
            dir.display()
        );
    }
    if failures == 0 {
        out!("\nEverything needed is in place.");
        Ok(())
    } else {
        Err(Failure::failed(format!("{failures} check(s) failed")))
    }
}

/// Builds and runs the service with `--check-dependencies` and reports its lines: one per
/// dependency, `ok   NAME: ...` or `FAIL NAME: ...`. Cargo's progress and errors, and the
/// service's own errors, go to stderr as they happen (the first build of a service takes a while).
fn check_dependencies(dir: &Path, env: Option<&str>, report: &mut impl FnMut(bool, &str, String)) {
    out!("...  dependencies: building the service to let it check them (cargo run -- --check-dependencies)");
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--", "--check-dependencies"]).current_dir(dir).stdin(Stdio::null()).stderr(Stdio::inherit());
    if let Some(env) = env {
        cmd.args(["--env", env]);
    }
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => return report(false, "dependencies", format!("cannot run cargo: {e}")),
    };
    let mut reported = false;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let (ok, rest) = match (line.strip_prefix("ok   "), line.strip_prefix("FAIL ")) {
            (Some(rest), _) => (true, rest),
            (_, Some(rest)) => (false, rest),
            _ => continue,
        };
        let (name, detail) = rest.split_once(": ").unwrap_or((rest, ""));
        report(ok, name, detail.to_owned());
        reported = true;
    }
    if reported {
        return;
    }
    match output.status.code() {
        Some(0) => report(true, "dependencies", "the service has none to check".to_owned()),
        Some(2) => {
            report(false, "dependencies", "the service refused its flags or configuration (see above)".to_owned())
        }
        _ => report(
            false,
            "dependencies",
            format!("the service did not build or run (`cargo run` in {}; see cargo's output above)", dir.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_versions() {
        assert!(rust_version_ok("rustc 1.95.0 (59807616e 2026-04-14)"));
        assert!(rust_version_ok("rustc 1.94.0"));
        assert!(!rust_version_ok("rustc 1.80.1 (abc)"));
        assert!(!rust_version_ok("garbage"));
    }
}
