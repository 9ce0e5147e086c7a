//! Shared helpers: running the CLI and external tools.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_microframework");

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().parent().unwrap().to_path_buf()
}

pub(crate) fn cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN).args(args).current_dir(cwd).output().unwrap()
}

pub(crate) fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Generates a service into `dir/name`; panics with the CLI's output on failure.
pub(crate) fn generate(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["new", name, "--no-git"];
    args.extend_from_slice(extra);
    let out = cli(&args, dir);
    assert!(out.status.success(), "microframework new failed: {}", text(&out));
    dir.join(name)
}

fn tool_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("MF_TOOLS_DIR") {
        dirs.push(PathBuf::from(d).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/microframework-tools/bin"));
    }
    dirs
}

/// Finds an external tool on PATH or in the tools virtualenv that `.ci/run` installs. A missing
/// tool skips the check with a message naming it, except under `CI=true`, where it fails.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    for dir in tool_dirs() {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "`{name}` is required under CI=true: run .ci/run, which installs it");
    eprintln!("skipping: `{name}` is not installed (.ci/run installs it)");
    None
}

/// Runs git in `dir` with a throwaway identity; panics with its output on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `dir` a git repository with everything in it committed.
pub(crate) fn committed(dir: &Path) {
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "generated"]);
}

/// `git status --porcelain --untracked-files=all`, sorted.
pub(crate) fn status(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> =
        git(dir, &["status", "--porcelain", "--untracked-files=all"]).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}
