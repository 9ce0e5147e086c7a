//! Starting, probing, measuring and stopping the servers under test.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How many lines of the server's output to keep for error messages.
const TAIL_LINES: usize = 40;

/// A free TCP port on 127.0.0.1 (bound, then released: another process could take it in between,
/// which is unlikely enough on a benchmark machine).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// What to start.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Name used in messages and the report.
    pub(crate) name: String,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: PathBuf,
    pub(crate) env: Vec<(String, String)>,
    /// Inherited variables starting with any of these prefixes are removed (e.g. `APP_`), so the
    /// caller's shell cannot change what is measured.
    pub(crate) clear_env_prefixes: Vec<String>,
}

/// Removes from `cmd`'s environment every variable of this process whose name `drop` selects, so
/// that the caller's shell cannot change what is measured.
pub(crate) fn remove_env(cmd: &mut Command, drop: impl Fn(&str) -> bool) {
    for (key, _) in std::env::vars_os() {
        if drop(&key.to_string_lossy()) {
            cmd.env_remove(&key);
        }
    }
}

/// A running server. Dropping it kills the process if it is still running.
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) port: u16,
    child: Child,
    spawned_at: Instant,
    tail: Arc<Mutex<VecDeque<String>>>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Spawns the process with stdout and stderr captured (the last lines are kept).
    pub(crate) fn spawn(launch: &Launch, port: u16) -> anyhow::Result<Self> {
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args).current_dir(&launch.cwd);
        remove_env(&mut cmd, |key| launch.clear_env_prefixes.iter().any(|p| key.starts_with(p.as_str())));
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child =
            cmd.spawn().with_context(|| format!("starting {} ({})", launch.name, launch.program.display()))?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        if let Some(out) = child.stdout.take() {
            keep_tail(out, Arc::clone(&tail));
        }
        if let Some(err) = child.stderr.take() {
            keep_tail(err, Arc::clone(&tail));
        }
        Ok(Self { name: launch.name.clone(), port, child, spawned_at, tail, exit: None })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Polls `GET <path>` every millisecond until it answers 200 and returns the time since spawn.
    /// Fails, with the server's output, when the process exits or `timeout` passes first.
    pub(crate) fn wait_ready(&mut self, path: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let what = format!("answering 200 on GET {}", self.url(path));
        self.wait_until(&what, timeout, || matches!(http_get(addr, path, Duration::from_millis(500)), Ok((200, _))))
    }

    /// Calls `ready` every millisecond until it returns true and returns the time since spawn.
    /// Fails, with the server's output, when the process exits or `timeout` passes first; `what`
    /// names the condition in those messages.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<Duration> {
        loop {
            if ready() {
                return Ok(self.spawned_at.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                self.exit = Some(status);
                bail!("{} exited ({status}) before {what}; its output ends with:\n{}", self.name, self.output_tail());
            }
            if self.spawned_at.elapsed() > timeout {
                bail!("{} was not {what} within {timeout:?}; its output ends with:\n{}", self.name, self.output_tail());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// CPU time (user + system) the process has used so far.
    pub(crate) fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(self.pid())
    }

    /// One `GET <path>`: the status and body.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)), path, Duration::from_secs(5))
            .with_context(|| format!("GET {}", self.url(path)))
    }

    /// Current resident set size (VmRSS), in KiB.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid())
    }

    /// Starts sampling VmRSS every 100 ms until [`RssSampler::finish`].
    pub(crate) fn sample_rss(&self) -> RssSampler {
        RssSampler::start(self.pid())
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit with status 0. Returns the
    /// time from the signal to the exit.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let pid = self.pid().to_string();
        let sent_at = Instant::now();
        let status = Command::new("kill").args(["-TERM", &pid]).status().context("running `kill -TERM`")?;
        if !status.success() {
            bail!("`kill -TERM {pid}` failed ({status}) for {}", self.name);
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.exit = Some(status);
                let took = sent_at.elapsed();
                if !status.success() {
                    bail!(
                        "{} exited with {status} after SIGTERM (expected exit code 0); its output ends with:\n{}",
                        self.name,
                        self.output_tail()
                    );
                }
                return Ok(took);
            }
            if sent_at.elapsed() > timeout {
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM; its output ends with:\n{}",
                    self.name,
                    self.output_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last lines the process printed (stdout and stderr interleaved).
    pub(crate) fn output_tail(&self) -> String {
        // Give the reader threads a moment to collect what a just-exited process wrote.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self.tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
        if tail.trim().is_empty() { "  (no output)".to_owned() } else { tail }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn keep_tail(stream: impl Read + Send + 'static, tail: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(format!("  | {line}"));
            }
        }
    });
}

/// A minimal HTTP/1.1 GET with `Connection: close`: the status code and the body (headers and
/// body are returned as-is; chunked encoding is not decoded, which is fine for short checks).
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP response: {:?}", text.chars().take(80).collect::<String>()))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// VmRSS of a process, in KiB, from `/proc/<pid>/status`.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    read_status_kib(pid, "VmRSS:")
}

/// RssAnon of a process (heap, stacks and other anonymous memory, without the mapped executable
/// and libraries), in KiB, from `/proc/<pid>/status`.
pub(crate) fn anon_rss_kib(pid: u32) -> anyhow::Result<u64> {
    read_status_kib(pid, "RssAnon:")
}

/// The value in KiB of `field` (`VmRSS:`) of `/proc/<pid>/status`.
fn read_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kib(&status, field).with_context(|| format!("no {field} line in /proc/{pid}/status"))
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) used by a process, from `/proc/<pid>/stat`.
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = parse_stat_cpu_ticks(&stat).with_context(|| format!("no utime/stime in /proc/{pid}/stat"))?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec() as f64))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) is in parentheses and may contain spaces and parentheses itself.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field 3 (state) is the first after the command name, so field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK` (100 on practically every Linux system, and when unknown).
fn clock_ticks_per_sec() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| super::command_output("getconf", &["CLK_TCK"]).parse().ok().filter(|&t| t > 0).unwrap_or(100))
}

/// Runs a program to completion with its output captured, killing it after `timeout`. Returns its
/// exit status, stdout and stderr.
pub(crate) fn run_captured(cmd: &mut Command, timeout: Duration) -> anyhow::Result<(ExitStatus, String, String)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let read = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut s) = stream {
                let mut bytes = Vec::new();
                let _ = s.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            bail!("{:?} did not finish within {timeout:?}; its stderr:\n{err}", cmd.get_program());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((status, stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default()))
}

/// Cumulative CPU time of the whole machine, from the `cpu` line of `/proc/stat` (in ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// The current counters, or `None` when `/proc/stat` is unreadable.
    pub(crate) fn read() -> Option<Self> {
        parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Share of the machine's CPU time (0–1, all cores) that was busy between `earlier` and `self`.
    pub(crate) fn busy_since(&self, earlier: &Self) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        (total > 0).then(|| busy as f64 / total as f64)
    }
}

fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user/nice]
    let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
    if fields.len() < 5 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields[4];
    Some(CpuTimes { busy: total - idle, total })
}

/// Samples a process's VmRSS every 100 ms on a background thread and keeps the maximum.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut max = 0;
            loop {
                if let Ok(kib) = rss_kib(pid) {
                    max = max.max(kib);
                }
                if flag.load(Ordering::Relaxed) {
                    return max;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self { stop, handle }
    }

    /// Stops sampling and returns the maximum VmRSS seen, in KiB (0 if none could be read).
    pub(crate) fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_line() {
        let status = "Name:\tbaseline-axum\nVmPeak:\t  20000 kB\nVmRSS:\t    4321 kB\nRssAnon:\t 1000 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(4321));
        assert_eq!(status_kib(status, "RssAnon:"), Some(1000));
        assert_eq!(status_kib("Name: x\n", "VmRSS:"), None);
    }

    #[test]
    fn cpu_times() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        let a = parse_cpu_times(stat).unwrap();
        assert_eq!(a, CpuTimes { busy: 150, total: 1000 });
        let b = CpuTimes { busy: 170, total: 1200 };
        assert_eq!(b.busy_since(&a), Some(0.1));
        assert_eq!(a.busy_since(&a), None);
        assert!(CpuTimes::read().is_some());
    }

    #[test]
    fn stat_cpu_ticks() {
        let stat = "4242 (weird) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0 100 1000 200\n";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(168));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2"), None);
        assert!(cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn captured_runs_and_timeouts() {
        let (status, out, err) =
            run_captured(Command::new("sh").args(["-c", "echo out; echo err >&2"]), Duration::from_secs(10)).unwrap();
        assert!(status.success());
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert!(run_captured(Command::new("sleep").arg("5"), Duration::from_millis(100)).is_err());
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
