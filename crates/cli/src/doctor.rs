//! `microframework doctor`: is the toolchain ready, and can the service reach its database?

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

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
                if config.get::<serde_ignored::Value>("database").is_some() {
                    check_database(&config, &mut report);
                }
            }
        }
    } else {
        out!("skip database: no configs/config.yaml in {} (run doctor inside a service, or pass --dir)", dir.display());
    }
    if failures == 0 {
        out!("\nEverything needed is in place.");
        Ok(())
    } else {
        Err(Failure::failed(format!("{failures} check(s) failed")))
    }
}

mod serde_ignored {
    /// Accepts any value: used to ask whether a key is present.
    #[derive(Debug)]
    pub(crate) struct Value;

    impl<'de> serde::Deserialize<'de> for Value {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| Value)
        }
    }
}

fn check_database(config: &microframework_core::Config, report: &mut impl FnMut(bool, &str, String)) {
    let cfg: microframework_data::DatabaseConfig = match config.section("database") {
        Ok(c) => c,
        Err(e) => return report(false, "database", e.to_string()),
    };
    let Some(url) = cfg.url.clone() else {
        return report(true, "database", "no database.url: the service uses its default SQLite file".into());
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return report(false, "database", format!("cannot start a runtime: {e}")),
    };
    let redacted = microframework_data::redact_url(&url);
    let outcome = runtime.block_on(async {
        let mut cfg = cfg.clone();
        cfg.connect_timeout = cfg.connect_timeout.min(Duration::from_secs(5));
        let db = microframework_data::Database::connect(&cfg, &url).await?;
        let ping = db.ping().await;
        db.close().await;
        ping
    });
    match outcome {
        Ok(()) => report(true, "database", format!("reached {redacted}")),
        Err(e) => report(false, "database", e.to_string()),
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
