//! Running [wrk](https://github.com/wg/wrk) and parsing its `--latency` report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// A wrk executable that has been checked to run.
#[derive(Debug, Clone)]
pub(crate) struct Wrk {
    program: PathBuf,
    /// The version banner, e.g. `wrk debian/4.1.0-3+b2 [epoll]`.
    pub(crate) version: String,
}

/// How hard and how long to load a URL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// wrk threads (`-t`).
    pub(crate) threads: u32,
    /// Open connections (`-c`).
    pub(crate) connections: u32,
    /// Run length (`-d`), whole seconds.
    pub(crate) duration: Duration,
}

impl Wrk {
    /// Finds wrk, or fails with the command that installs it.
    pub(crate) fn locate(program: &Path) -> anyhow::Result<Self> {
        // `wrk -v` prints the banner and usage, then exits 1: success is "it ran".
        let out = match Command::new(program).arg("-v").output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "`{}` not found: install wrk: apt-get install wrk (or pass --wrk <path> / set WRK)",
                program.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("running `{} -v`", program.display())),
        };
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let version = text
            .lines()
            .find(|l| l.starts_with("wrk "))
            .map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_owned())
            .unwrap_or_else(|| "wrk (unknown version)".to_owned());
        Ok(Self { program: program.to_owned(), version })
    }

    /// Runs `wrk --latency` against `url` and returns the parsed result and wrk's raw output.
    pub(crate) fn run(&self, url: &str, load: Load) -> anyhow::Result<(WrkResult, String)> {
        let secs = load.duration.as_secs().max(1);
        let out = Command::new(&self.program)
            .args(["-t", &load.threads.to_string(), "-c", &load.connections.to_string(), "-d", &format!("{secs}s")])
            .arg("--latency")
            .arg(url)
            .output()
            .with_context(|| format!("running {}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!("wrk failed ({}) against {url}:\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let result = parse(&stdout).with_context(|| format!("parsing wrk output for {url}:\n{stdout}"))?;
        Ok((result, stdout))
    }
}

/// wrk's socket error counters (`Socket errors: connect 0, read 0, write 0, timeout 0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SocketErrors {
    pub(crate) connect: u64,
    pub(crate) read: u64,
    pub(crate) write: u64,
    pub(crate) timeout: u64,
}

impl SocketErrors {
    pub(crate) fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// The numbers of one wrk run. Latencies are in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WrkResult {
    pub(crate) requests_per_sec: f64,
    pub(crate) requests: u64,
    pub(crate) p50_us: f64,
    pub(crate) p75_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) socket_errors: SocketErrors,
    /// Responses with status ≥ 400 (wrk: `Non-2xx or 3xx responses`).
    pub(crate) non_2xx: u64,
}

impl WrkResult {
    /// Socket errors plus error responses.
    pub(crate) fn errors(&self) -> u64 {
        self.socket_errors.total() + self.non_2xx
    }

    /// A one-line description of the errors, e.g. `12 non-2xx responses, 3 timeouts`.
    pub(crate) fn describe_errors(&self) -> String {
        let s = &self.socket_errors;
        let parts: Vec<String> = [
            (self.non_2xx, "non-2xx/3xx responses"),
            (s.connect, "connect errors"),
            (s.read, "read errors"),
            (s.write, "write errors"),
            (s.timeout, "timeouts"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() { "no errors".to_owned() } else { parts.join(", ") }
    }
}

/// Parses the output of `wrk --latency`.
pub(crate) fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let mut rps = None;
    let mut requests = None;
    let mut percentiles: [Option<f64>; 4] = [None; 4];
    let mut socket_errors = SocketErrors::default();
    let mut non_2xx = 0;
    let mut in_distribution = false;

    for line in output.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            // `     50%    2.02ms`
            if let Some((pct, value)) = t.split_once('%')
                && let Ok(pct) = pct.trim().parse::<f64>()
            {
                let us = parse_time_us(value.trim())
                    .with_context(|| format!("latency percentile `{t}` has an unknown unit"))?;
                let slot = [50.0, 75.0, 90.0, 99.0].iter().position(|p| *p == pct);
                if let Some(i) = slot {
                    percentiles[i] = Some(us);
                }
                continue;
            }
            in_distribution = false;
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = Some(v.trim().parse::<f64>().with_context(|| format!("bad `{t}`"))?);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            for part in v.split(',') {
                let mut words = part.split_whitespace();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else { continue };
                let n: u64 = n.parse().with_context(|| format!("bad `{t}`"))?;
                match kind {
                    "connect" => socket_errors.connect = n,
                    "read" => socket_errors.read = n,
                    "write" => socket_errors.write = n,
                    "timeout" => socket_errors.timeout = n,
                    _ => {}
                }
            }
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().with_context(|| format!("bad `{t}`"))?;
        } else if let Some((n, rest)) = t.split_once(" requests in ")
            && rest.contains("read")
        {
            requests = Some(n.trim().parse::<u64>().with_context(|| format!("bad `{t}`"))?);
        }
    }

    let missing = |what: &str| anyhow::anyhow!("wrk output has no {what} (was wrk run with --latency?)");
    Ok(WrkResult {
        requests_per_sec: rps.ok_or_else(|| missing("`Requests/sec:` line"))?,
        requests: requests.ok_or_else(|| missing("`N requests in …` line"))?,
        p50_us: percentiles[0].ok_or_else(|| missing("50% latency"))?,
        p75_us: percentiles[1].ok_or_else(|| missing("75% latency"))?,
        p90_us: percentiles[2].ok_or_else(|| missing("90% latency"))?,
        p99_us: percentiles[3].ok_or_else(|| missing("99% latency"))?,
        socket_errors,
        non_2xx,
    })
}

/// Parses a wrk time such as `512.34us`, `1.20ms`, `2.00s`, `1.50m` or `1.00h` into microseconds.
fn parse_time_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(num * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from `wrk -t 1 -c 64 -d 3s --latency …/hello` against `baseline-axum`.
    const CLEAN: &str = include_str!("testdata/wrk-clean.txt");
    /// Captured from the same command against a route that answers 404, with the server stopped
    /// (SIGTERM) a second into the run, so both error lines are present.
    const ERRORS: &str = include_str!("testdata/wrk-errors.txt");

    #[test]
    fn parses_a_clean_run() {
        let r = parse(CLEAN).unwrap();
        assert_eq!(r.requests_per_sec, 30503.90);
        assert_eq!(r.requests, 91783);
        assert_eq!((r.p50_us, r.p75_us, r.p90_us, r.p99_us), (2020.0, 2670.0, 2980.0, 3820.0));
        assert_eq!(r.errors(), 0);
        assert_eq!(r.describe_errors(), "no errors");
    }

    #[test]
    fn parses_error_lines() {
        let r = parse(ERRORS).unwrap();
        assert_eq!(r.requests_per_sec, 13508.83);
        assert_eq!(r.requests, 40601);
        assert_eq!(r.p99_us, 2460.0);
        assert_eq!(r.non_2xx, 40601);
        assert_eq!(r.socket_errors, SocketErrors { connect: 0, read: 64, write: 106944, timeout: 0 });
        assert_eq!(r.errors(), 40601 + 64 + 106944);
        assert_eq!(r.describe_errors(), "40601 non-2xx/3xx responses, 64 read errors, 106944 write errors");
    }

    #[test]
    fn parses_a_synthetic_report_exactly() {
        let out = "Running 5s test @ http://127.0.0.1:1/hello
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.34us  100.00us   1.50s    90.00%
    Req/Sec    60.00k     2.00k   65.00k    80.00%
  Latency Distribution
     50%  500.00us
     75%  550.00us
     90%    1.20ms
     99%    2.00s
  300000 requests in 5.00s, 36.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  60000.50
Transfer/sec:      7.20MB
";
        let r = parse(out).unwrap();
        assert_eq!(
            r,
            WrkResult {
                requests_per_sec: 60000.5,
                requests: 300000,
                p50_us: 500.0,
                p75_us: 550.0,
                p90_us: 1200.0,
                p99_us: 2_000_000.0,
                socket_errors: SocketErrors { connect: 1, read: 2, write: 3, timeout: 4 },
                non_2xx: 5,
            }
        );
        assert_eq!(r.errors(), 15);
        assert_eq!(
            r.describe_errors(),
            "5 non-2xx/3xx responses, 1 connect errors, 2 read errors, 3 write errors, 4 timeouts"
        );
    }

    #[test]
    fn output_without_latency_distribution_is_an_error() {
        let out = "  300000 requests in 5.00s, 36.00MB read\nRequests/sec:  60000.00\n";
        let err = parse(out).unwrap_err().to_string();
        assert!(err.contains("--latency"), "{err}");
    }

    #[test]
    fn time_units() {
        assert_eq!(parse_time_us("812.00us"), Some(812.0));
        assert_eq!(parse_time_us("1.25ms"), Some(1250.0));
        assert_eq!(parse_time_us("2.00s"), Some(2e6));
        assert_eq!(parse_time_us("1.00m"), Some(60e6));
        assert_eq!(parse_time_us("3"), None);
        assert_eq!(parse_time_us("3.0xs"), None);
    }
}
