//! Runtime behaviour of the built binary, beyond the generated tests: graceful shutdown under
//! load, start-up failures and their exit codes, flags and the container health check.
//!
//! This file is not generated: it shows how a service adds its own tests next to the generated
//! ones (the generator's manifest, .microframework.toml, does not list it).

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use microframework::auth::JwtSigner;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_users-service");
const SECRET: &str = "runtime-test-secret-0123456789abcdef0123";

fn token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    JwtSigner::hs256(SECRET.as_bytes())
        .sign(&json!({"sub": "load", "iss": "users-service", "exp": exp}))
        .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

/// The binary with a hermetic environment: no `APP_*` variable, and none of the variables the
/// configuration interpolates, from the caller's shell.
fn command(data: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("APP_") || matches!(k, "JWT_SECRET" | "DATABASE_URL"))
        {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env("JWT_SECRET", SECRET)
        .env(
            "APP_DATABASE__URL",
            format!("sqlite://{}/e2e.db?mode=rwc", data.display()),
        )
        .env("APP_LOGGING__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

impl Proc {
    fn start(extra_env: &[(&str, &str)]) -> Proc {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = command(data.path());
        cmd.env("APP_SERVER__PORT", port.to_string());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Proc {
            child,
            port,
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(self.url("/health/ready")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("the service exited with {status}: {err}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the service did not become ready");
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    fn wait_exit(mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.code(), err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the service did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Under load, SIGTERM makes readiness fail first; a client that stops sending new requests when
/// readiness fails (as a load balancer does) sees no failed request, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_request_and_exits_zero() {
    let mut proc = Proc::start(&[
        ("APP_SHUTDOWN__DRAIN_DELAY", "1s"),
        ("APP_SHUTDOWN__TIMEOUT", "10s"),
    ]);
    proc.wait_ready().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let token = token();
    let draining = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));

    let watcher = {
        let (client, draining, url) = (client.clone(), draining.clone(), proc.url("/health/ready"));
        tokio::spawn(async move {
            loop {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 503 => break,
                    Err(_) => break,
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            draining.store(true, Ordering::SeqCst);
        })
    };
    let mut workers = Vec::new();
    for w in 0..32 {
        let (client, draining, ok, failed, failures) = (
            client.clone(),
            draining.clone(),
            ok.clone(),
            failed.clone(),
            failures.clone(),
        );
        let token = token.clone();
        let base = proc.url("");
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !draining.load(Ordering::SeqCst) {
                i += 1;
                let res = match i % 3 {
                    0 => {
                        client
                            .post(format!("{base}/users"))
                            .bearer_auth(&token)
                            .json(&json!({"name": format!("load w{w} #{i}")}))
                            .send()
                            .await
                    }
                    1 => client.get(format!("{base}/users?per_page=5")).send().await,
                    _ => client.get(format!("{base}/health/live")).send().await,
                };
                match res {
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", r.status()));
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures.lock().unwrap().push(format!("error {e}"));
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 100, "the load is running ({before} requests)");
    proc.sigterm();
    for w in workers {
        w.await.unwrap();
    }
    watcher.await.unwrap();
    let (code, stderr) = proc.wait_exit(Duration::from_secs(20));
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests: {:?}",
        failures.lock().unwrap()
    );
    assert!(
        ok.load(Ordering::Relaxed) > before,
        "requests kept succeeding after SIGTERM"
    );
    assert_eq!(code, Some(0), "exit code; stderr: {stderr}");
}

#[tokio::test]
async fn serves_crud_and_stops_cleanly_on_sigterm() {
    let mut proc = Proc::start(&[]);
    proc.wait_ready().await;
    let client = reqwest::Client::new();
    let res = client
        .post(proc.url("/users"))
        .bearer_auth(token())
        .json(&json!({"name": "E2E"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let list: serde_json::Value = client
        .get(proc.url("/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    let healthcheck = |port: u16| {
        let data = tempfile::tempdir().unwrap();
        run_to_exit(
            command(data.path())
                .arg("--healthcheck")
                .env("APP_SERVER__PORT", port.to_string()),
        )
    };
    let port = proc.port;
    assert_eq!(
        healthcheck(port).0,
        Some(0),
        "the container health check passes while serving"
    );
    proc.sigterm();
    let (code, stderr) = proc.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = healthcheck(port);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unhealthy: cannot connect"), "{stderr}");
}

fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_config_file_exits_2_naming_key_file_and_line() {
    let data = tempfile::tempdir().unwrap();
    let configs = tempfile::tempdir().unwrap();
    std::fs::write(
        configs.path().join("config.yaml"),
        "server:\n  port: eighty\nlogging:\n  level: verbose\n",
    )
    .unwrap();
    let (code, stderr) = run_to_exit(
        command(data.path())
            .env("APP_CONFIG_DIR", configs.path())
            .env_remove("APP_LOGGING__LEVEL"),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid configuration (2 problems)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`server.port`") && stderr.contains("config.yaml:2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`logging.level`") && stderr.contains("config.yaml:4"),
        "{stderr}"
    );
}

#[test]
fn a_missing_required_env_var_in_prod_exits_2_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(
        command(data.path())
            .env("APP_ENV", "prod")
            .env_remove("JWT_SECRET"),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`auth.jwt.secret`") && stderr.contains("JWT_SECRET"),
        "{stderr}"
    );
    assert!(stderr.contains("config.prod.yaml:"), "{stderr}");
}

#[test]
fn bad_flags_exit_2_and_check_config_validates() {
    let data = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(command(data.path()).args(["--port", "http"]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--port"), "{stderr}");
    let (code, stderr) = run_to_exit(command(data.path()).args(["--set", "server.port"]));
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stderr) = run_to_exit(command(data.path()).arg("--check-config"));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run_to_exit(command(data.path()).args([
        "--check-config",
        "--set",
        "http.timeout.duration=0s",
    ]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "`http.timeout.duration` (from command-line flag --set http.timeout.duration)"
        ),
        "{stderr}"
    );
    let out = command(data.path())
        .arg("--version")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("users-service {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_port_in_use_exits_1_with_a_clear_message() {
    let data = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (code, stderr) = run_to_exit(command(data.path()).env("APP_SERVER__PORT", &port));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
