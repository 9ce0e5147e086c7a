//! A generated service compiles only what it uses: the database driver it was generated for,
//! and no other. Checked on the resolved dependency graph (`cargo tree -e features`), which
//! includes dev-dependencies and needs no build.

mod common;

use std::process::Command;

use common::generate;

/// The package lines of `cargo tree -e features` for the service at `dir`.
fn tree(dir: &std::path::Path) -> String {
    tree_of(dir, "features")
}

/// The package lines of `cargo tree -e <edges>` for the service at `dir`.
fn tree_of(dir: &std::path::Path, edges: &str) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-e", edges, "--locked", "--offline", "--prefix", "none"])
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cargo tree failed in {}:\n{text}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn each_database_compiles_only_its_own_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let drivers = [("sqlite", "libsqlite3-sys"), ("postgres", "sqlx-postgres"), ("mysql", "sqlx-mysql")];
    for (database, own) in drivers {
        let dir = generate(tmp.path(), &format!("deps-{database}"), &[&format!("--with-database={database}")]);
        let tree = tree(&dir);
        assert!(tree.contains(own), "a {database} service needs {own}:\n{tree}");
        for (other, driver) in drivers.iter().filter(|(d, _)| *d != database) {
            assert!(!tree.contains(driver), "a {database} service compiles {driver} ({other}):\n{tree}");
        }
    }
    let dir = generate(tmp.path(), "deps-none", &["--with-database=none"]);
    let tree = tree(&dir);
    for (_, driver) in drivers {
        assert!(!tree.contains(driver), "a service without a database compiles {driver}:\n{tree}");
    }
}

#[test]
fn only_services_with_jwt_auth_compile_the_jwks_client() {
    let tmp = tempfile::tempdir().unwrap();
    // Normal dependencies only: the tests' HTTP client is a dev-dependency of every service.
    let without = tree_of(&generate(tmp.path(), "deps-no-auth", &["--with-database=none"]), "normal");
    assert!(!without.contains("reqwest"), "a service without auth compiles reqwest:\n{without}");
    let with = tree_of(&generate(tmp.path(), "deps-jwt", &["--with-database=none", "--with-auth=jwt"]), "normal");
    assert!(with.contains("reqwest"), "a service with JWT auth can fetch a JWKS:\n{with}");
}
