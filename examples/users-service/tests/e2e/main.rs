//! End-to-end: the built binary, started as in production, driven over HTTP, stopped by SIGTERM.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use microframework::auth::JwtSigner;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_users-service");

/// The variables the configuration files read with `${...}`.
const CONFIG_VARIABLES: [&str; 2] = ["JWT_SECRET", "DATABASE_URL"];

/// The service binary with a hermetic environment: no `APP_*` variable and none of the variables
/// the configuration files interpolate leaks in from the caller's shell (direnv, CI variables);
/// the test sets what it needs.
fn service_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("APP_") || CONFIG_VARIABLES.contains(&k))
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}
const SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789";

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test]
async fn serves_crud_and_exits_zero_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/e2e.db?mode=rwc", data.path().display());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = service_command();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("APP_SERVER__PORT", port.to_string())
        .env("APP_LOGGING__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.env("APP_DATABASE__URL", &database_url);
    cmd.env("JWT_SECRET", SECRET);
    let mut process = Process(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let client = microframework_testing::reqwest::Client::new();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = client.get(format!("{base}/health/ready")).send().await
            && res.status() == 200
        {
            break;
        }
        if let Some(status) = process.0.try_wait().unwrap() {
            let mut err = String::new();
            process
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the service exited with {status}: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the service did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let token = JwtSigner::hs256(SECRET.as_bytes())
        .sign(&json!({"sub": "e2e", "iss": "users-service", "exp": exp}))
        .unwrap();
    let res = client
        .post(format!("{base}/users"))
        .bearer_auth(&token)
        .json(&json!({"name": "end to end"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let list: Value = client
        .get(format!("{base}/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], created["id"]);

    let pid = process.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
}
