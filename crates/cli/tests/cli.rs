//! The CLI as users call it: bad input gets a clear message and a non-zero exit with nothing
//! written; good input writes a complete, deterministic service.

mod common;

use std::path::Path;

use common::{cli, generate, text};

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn invalid_names_are_refused_with_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, why) in [
        ("my service", "space"),
        ("UserService", "uppercase"),
        ("fn", "characters long"),
        ("type", "keyword"),
        ("9lives", "start with a letter"),
        ("svc-", "ends with"),
    ] {
        let out = cli(&["new", name, "--no-git"], tmp.path());
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        let msg = text(&out);
        assert!(msg.contains(why) && msg.contains("lowercase letters, digits and `-`"), "{name}: {msg}");
    }
    assert!(files(tmp.path()).is_empty(), "nothing is written");
}

#[test]
fn unknown_values_list_the_valid_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(&["new", "svc-a", "--with-database=oracle"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("[possible values: sqlite, postgres, mysql, none]"), "{}", text(&out));
    let out = cli(&["new", "svc-a", "--type", "soap"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("valid types: rest, graphql, grpc"), "{}", text(&out));
    let out = cli(&["new", "svc-a", "--type", "event"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not available in this version yet; available: rest"), "{}", text(&out));
    let out = cli(&["new", "svc-a", "--with-auth=ldap"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&["new", "svc-a", "--resource", "Bad-Name"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("invalid resource name"), "{}", text(&out));
    let out = cli(&["new", "svc-a", "--framework-path", "/nonexistent/framework"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not a MicroFramework checkout"), "{}", text(&out));
    assert!(files(tmp.path()).is_empty(), "nothing is written");
}

#[test]
fn an_existing_directory_needs_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("svc-b");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = cli(&["new", "svc-b", "--no-git"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("already exists and is not empty") && text(&out).contains("--force"));
    assert_eq!(files(&dir), ["notes.txt"], "nothing half-written");
    let out = cli(&["new", "svc-b", "--no-git", "--force"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("Cargo.toml").is_file());
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine", "other files are kept");
}

#[cfg(unix)]
#[test]
fn an_unwritable_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let locked = tmp.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits: then use a directory nobody can create entries in, /proc.
    let root = std::fs::write(locked.join("probe"), "x").is_ok();
    let parent = if root { std::path::PathBuf::from("/proc") } else { locked.clone() };
    let target = parent.join("mf-unwritable-svc-c");
    let out = cli(&["new", "svc-c", "--no-git", "--dir", target.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot write"), "{}", text(&out));
    assert!(!target.exists(), "nothing is left behind");
    if !root {
        assert!(files(&locked).is_empty());
    }
}

#[test]
fn a_file_in_the_way_is_a_clear_error_and_nothing_is_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("blocker"), "a file, not a directory").unwrap();
    let target = tmp.path().join("blocker").join("svc-d");
    let out = cli(&["new", "svc-d", "--no-git", "--dir", target.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot write"), "{}", text(&out));
    assert_eq!(files(tmp.path()), ["blocker"]);
}

#[test]
fn dry_run_lists_files_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(&["new", "svc-e", "--dry-run", "--with-database=postgres"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    for f in ["Cargo.toml", "src/main.rs", "migrations/postgres/0001_create_users.sql", ".microframework.toml"] {
        assert!(listing.contains(f), "{f} missing from:\n{listing}");
    }
    assert!(files(tmp.path()).is_empty());
}

#[test]
fn output_is_deterministic_and_recorded_in_the_manifest() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let da = generate(a.path(), "svc-f", &["--with-database=mysql", "--with-auth=jwt"]);
    let db = generate(b.path(), "svc-f", &["--with-database=mysql", "--with-auth=jwt"]);
    let list = files(&da);
    assert_eq!(list, files(&db));
    for f in &list {
        assert_eq!(std::fs::read(da.join(f)).unwrap(), std::fs::read(db.join(f)).unwrap(), "{f} differs between runs");
    }
    let manifest = std::fs::read_to_string(da.join(".microframework.toml")).unwrap();
    assert!(manifest.contains("database = \"mysql\"") && manifest.contains("auth = \"jwt\""), "{manifest}");
    assert!(manifest.contains("[files.\"src/main.rs\"]"), "{manifest}");
    for expected in [
        "Makefile",
        "README.md",
        ".gitignore",
        ".dockerignore",
        "configs/config.yaml",
        "configs/config.dev.yaml",
        "configs/config.prod.yaml",
        "deployments/docker/Dockerfile",
        "deployments/docker/docker-compose.yml",
        "deployments/kubernetes/deployment.yaml",
        "deployments/kubernetes/service.yaml",
        "deployments/kubernetes/configmap.yaml",
        "deployments/kubernetes/secret.yaml",
        "deployments/kubernetes/ingress.yaml",
        "deployments/kubernetes/hpa.yaml",
        "deployments/kubernetes/kustomization.yaml",
        "deployments/helm/svc-f/Chart.yaml",
        "deployments/helm/svc-f/values.yaml",
        "docs/api.md",
        "docs/deployment.md",
        "scripts/build.sh",
        "scripts/test.sh",
        "scripts/deploy.sh",
        "src/handlers/users.rs",
        "src/services/user_service.rs",
        "src/repositories/user_repository.rs",
        "src/models/user.rs",
        "src/middleware/mod.rs",
        "tests/integration/main.rs",
        "tests/e2e/main.rs",
    ] {
        assert!(list.iter().any(|f| f == expected), "{expected} is not generated: {list:?}");
    }
    let makefile = std::fs::read_to_string(da.join("Makefile")).unwrap();
    for target in [
        "run",
        "build",
        "test",
        "test-integration",
        "test-e2e",
        "lint",
        "fmt",
        "docker-build",
        "k8s-deploy",
        "helm-install",
    ] {
        assert!(makefile.contains(&format!("\n{target}:")), "Makefile lacks `{target}`");
    }
    let readme = std::fs::read_to_string(da.join("README.md")).unwrap();
    assert!(readme.lines().take(15).any(|l| l.contains("cargo run")), "the README starts with how to run it");
}

#[test]
fn no_name_without_a_terminal_is_an_error_not_a_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["new"])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("missing the service name"), "{}", text(&out));
}

#[test]
fn list_doctor_completions_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(&["list", "types"], tmp.path());
    assert!(out.status.success() && text(&out).contains("rest") && text(&out).contains("(not available yet)"));
    let out = cli(&["list", "features"], tmp.path());
    assert!(out.status.success() && text(&out).contains("database"));
    let out = cli(&["completions", "bash"], tmp.path());
    assert!(out.status.success() && text(&out).contains("_microframework()"), "{}", text(&out));
    let out = cli(&["--version"], tmp.path());
    assert_eq!(text(&out).trim(), format!("microframework {}", env!("CARGO_PKG_VERSION")));
    let out = cli(&["list", "things"], tmp.path());
    assert_eq!(out.status.code(), Some(2));

    // doctor outside a service checks the toolchain only.
    let out = cli(&["doctor"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok   rustc") && text(&out).contains("skip dependencies"), "{}", text(&out));
    // Inside a service with a broken configuration it says where, and builds nothing.
    // (tests/generated.rs runs doctor's dependency check in a built service.)
    let dir = generate(tmp.path(), "svc-g", &[]);
    std::fs::write(dir.join("configs/config.dev.yaml"), "logging: [unclosed\n").unwrap();
    let out = cli(&["doctor"], &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("FAIL configuration") && !text(&out).contains("dependencies:"), "{}", text(&out));
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    // `microframework new x --dry-run | head -1`: the reader goes away after one line.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::BIN)
        .args(["new", "svc-pipe", "--dry-run"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
