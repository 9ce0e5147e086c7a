//! Benchmarks. Each kind (`http` today; `grpc` and others later) lives in its own module and
//! shares the process control ([`proc`]), load generator ([`wrk`]) and report ([`report`]) helpers.

pub(crate) mod generator;
pub(crate) mod http;
pub(crate) mod proc;
pub(crate) mod report;
pub(crate) mod wrk;

use std::process::Command;

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
    fn quoting() {
        assert_eq!(shell_quote("--duration"), "--duration");
        assert_eq!(shell_quote("docs/bench.md"), "docs/bench.md");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
