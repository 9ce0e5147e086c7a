//! End-to-end: generate services for several flag combinations, then check that each passes
//! `cargo fmt --check`, `cargo clippy --all-targets -- -D warnings` and its own `cargo test`
//! (unit, integration against the real database, and e2e: the built binary started, driven with
//! CRUD over HTTP and stopped by SIGTERM with exit code 0).
//!
//! The services build in one shared target directory (`target/generated-services`), so
//! dependencies compile once. Set MF_SKIP_GENERATED=1 to skip this slow test locally.

mod common;

use std::path::Path;
use std::process::Command;

use common::{generate, workspace_root};

fn cargo(dir: &Path, args: &[&str]) {
    let target = workspace_root().join("target/generated-services");
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`cargo {}` failed in {}:\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generated_services_build_lint_and_pass_their_tests() {
    if std::env::var("MF_SKIP_GENERATED").is_ok_and(|v| v == "1") {
        eprintln!("skipping: MF_SKIP_GENERATED=1");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let variants: [(&str, &[&str]); 7] = [
        ("svc-sqlite", &["--with-database=sqlite"]),
        ("svc-postgres-jwt", &["--with-database=postgres", "--with-auth=jwt"]),
        ("svc-mysql", &["--with-database=mysql", "--resource=orders"]),
        ("svc-memory-jwt", &["--with-database=none", "--with-auth=jwt"]),
        ("svc-ws-sqlite-jwt", &["--type=websocket", "--with-database=sqlite", "--with-auth=jwt"]),
        ("svc-grpc-postgres-jwt", &["--type=grpc", "--with-database=postgres", "--with-auth=jwt"]),
        ("svc-graphql-postgres-jwt", &["--type=graphql", "--with-database=postgres", "--with-auth=jwt"]),
    ];
    for (name, flags) in variants {
        let dir = generate(tmp.path(), name, flags);
        cargo(&dir, &["fmt", "--check"]);
        cargo(&dir, &["clippy", "--all-targets", "--", "-D", "warnings"]);
        cargo(&dir, &["test"]);
        eprintln!("{name}: fmt, clippy and tests passed");
    }
}
