//! Benchmarks. Each kind (`http`, `grpc`, `ws`, `gen`, `layers`, `profile`, `size`) lives in its own module and shares the
//! process control ([`proc`]), load generators ([`wrk`], [`grpc_load`]) and report ([`report`])
//! helpers; [`grpc_generated`] prepares the generated gRPC service `bench grpc` also measures.

pub(crate) mod generator;
pub(crate) mod grpc;
pub(crate) mod grpc_generated;
pub(crate) mod grpc_load;
pub(crate) mod http;
pub(crate) mod layers;
pub(crate) mod proc;
pub(crate) mod profile;
pub(crate) mod report;
pub(crate) mod size;
pub(crate) mod wrk;
pub(crate) mod ws;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}

/// Where and with what the benchmark ran, for the report header.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// CPU model from `/proc/cpuinfo`.
    pub(crate) cpu: String,
    /// Logical cores available to this process.
    pub(crate) cores: usize,
    /// `uname -r`.
    pub(crate) kernel: String,
    /// `rustc -V`.
    pub(crate) rustc: String,
    /// `date -u`.
    pub(crate) date: String,
}

impl Machine {
    /// Collects the description; unknown parts read `unknown`.
    pub(crate) fn describe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        Self {
            cpu,
            cores,
            kernel: command_output("uname", &["-r"]),
            rustc: command_output("rustc", &["-V"]),
            date: command_output("date", &["-u"]),
        }
    }
}

/// The first line of a command's stdout, or `unknown`.
pub(crate) fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg` (`4.03 4.00 3.56`), or `unknown`.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| parse_load_average(&s))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn parse_load_average(text: &str) -> String {
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Runs `cargo build --release <args>` (one invocation, errors shown on stderr) and returns the
/// executables it produced (binaries and examples) by target name.
pub(crate) fn release_build(root: &Path, args: &[&str]) -> anyhow::Result<HashMap<String, PathBuf>> {
    release_build_in(root, args, &[])
}

/// [`release_build`] in `dir` (a package outside the workspace, say) with `env` added to cargo's
/// environment.
pub(crate) fn release_build_in(
    dir: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let env_text: String = env.iter().map(|(k, v)| format!("{k}={} ", shell_quote(v))).collect();
    eprintln!("== {env_text}cargo build --release {}", args.join(" "));
    let out = Command::new(&cargo)
        .args(["build", "--release"])
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!("`cargo build --release` failed ({}); see the errors above", out.status);
    }
    Ok(executables(&String::from_utf8_lossy(&out.stdout)))
}

/// Generates `microframework new <name> <args>` with the release CLI `cli` against this checkout,
/// into `<system temp>/<parent>/<name>` (a fixed directory outside the workspace, overwritten with
/// `--force` on every run, so the generated code is always current), and builds its binary in
/// release with the workspace's target directory, so the framework and its dependencies are
/// compiled once for every benchmark. Returns the executable and the service's directory.
pub(crate) fn generate_release(
    root: &Path,
    cli: &Path,
    parent: &str,
    name: &str,
    args: &[&str],
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let parent = std::env::temp_dir().join(parent);
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let dir = parent.join(name);
    eprintln!("== microframework new {name} {} in {}", args.join(" "), dir.display());
    generator::timed(
        Command::new(cli)
            .args(["new", name])
            .args(args)
            .args(["--no-git", "--force", "--framework-path"])
            .arg(root)
            .arg("--dir")
            .arg(&dir),
        "microframework new",
    )?;
    let target = target_dir(root);
    let exes = release_build_in(
        &dir,
        &["--bin", name],
        &[("CARGO_TARGET_DIR".to_owned(), target.to_string_lossy().into_owned())],
    )?;
    let exe =
        exes.get(name).cloned().with_context(|| format!("the build of the generated service produced no `{name}`"))?;
    Ok((exe, dir))
}

/// The size of `exe` after `strip` of a copy made in `scratch`; `None` when `strip` is missing or
/// fails.
pub(crate) fn stripped_size(exe: &Path, scratch: &Path) -> Option<u64> {
    let copy = scratch.join(format!("{}.stripped", exe.file_name()?.to_string_lossy()));
    std::fs::copy(exe, &copy).ok()?;
    let stripped = Command::new("strip")
        .arg(&copy)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&copy).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_file(&copy);
    stripped
}

/// The executables in cargo's JSON messages, by target name.
fn executables(messages: &str) -> HashMap<String, PathBuf> {
    let mut exes = HashMap::new();
    for line in messages.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) {
            exes.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    exes
}

/// The workspace's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root) or
/// `target/`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    if target_dir.is_absolute() { target_dir } else { root.join(target_dir) }
}

/// `target/release/<name>` (or under `$CARGO_TARGET_DIR`), for `--no-build`; `example` puts it in
/// `examples/`.
pub(crate) fn prebuilt(root: &Path, name: &str, example: bool) -> anyhow::Result<PathBuf> {
    let target_dir = target_dir(root);
    let dir = if example { target_dir.join("release/examples") } else { target_dir.join("release") };
    let exe = dir.join(name);
    if !exe.is_file() {
        bail!("{} is missing: run without --no-build", exe.display());
    }
    Ok(exe)
}

/// The result a measuring program prints last: the last line of its `stdout` that starts with
/// `{`, parsed as JSON; `who` names the program in errors.
pub(crate) fn parse_last_json_line<T: serde::de::DeserializeOwned>(stdout: &str, who: &str) -> anyhow::Result<T> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("{who} printed no JSON line"))?;
    serde_json::from_str(line).with_context(|| format!("parsing the result of {who}: `{line}`"))
}

/// Replaces the `bench:<section>` part of the markdown file at `path` (relative to the
/// workspace root; created if absent) with `markdown`.
pub(crate) fn write_section(root: &Path, path: &Path, section: &str, markdown: &str) -> anyhow::Result<()> {
    let path = if path.is_absolute() { path.to_owned() } else { root.join(path) };
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let updated = report::replace_marked(existing.as_deref(), section, markdown)
        .with_context(|| format!("updating {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote the report to {}", path.display());
    Ok(())
}

/// This invocation as the user typed it (`cargo xtask …`), shell-quoted where needed.
pub(crate) fn command_line() -> String {
    let mut line = String::from("cargo xtask");
    for arg in std::env::args().skip(1) {
        line.push(' ');
        line.push_str(&shell_quote(&arg));
    }
    line
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '=' | ':' | ',' | '+'));
    if plain { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn load_average_fields() {
        assert_eq!(parse_load_average("4.03 4.00 3.56 3/512 12345\n"), "4.03 4.00 3.56");
        assert_eq!(parse_load_average(""), "");
    }

    #[test]
    fn executables_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"fanout","kind":["example"]},"executable":"/t/release/examples/fanout"}
{"reason":"compiler-artifact","target":{"name":"bench_servers","kind":["lib"]},"executable":null}
{"reason":"build-finished","success":true}
not json"#;
        let exes = executables(messages);
        assert_eq!(exes.len(), 1);
        assert_eq!(exes["fanout"], PathBuf::from("/t/release/examples/fanout"));
    }

    #[test]
    fn writes_sections_into_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("docs/bench.md");
        write_section(dir.path(), Path::new("docs/bench.md"), "grpc", "G1\n").unwrap();
        write_section(dir.path(), &file, "ws", "W1\n").unwrap();
        write_section(dir.path(), &file, "grpc", "G2\n").unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("<!-- bench:grpc:start -->\nG2\n<!-- bench:grpc:end -->"), "{text}");
        assert!(text.contains("<!-- bench:ws:start -->\nW1\n<!-- bench:ws:end -->"), "{text}");
        assert!(!text.contains("G1"));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--duration"), "--duration");
        assert_eq!(shell_quote("docs/bench.md"), "docs/bench.md");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
