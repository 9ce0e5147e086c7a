//! `microframework new`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use microframework_gen::{
    AuthKind, DatabaseKind, FrameworkSource, Options, ServiceType, render, validate_name, write_new,
};

use crate::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DbArg {
    /// SQLite, embedded (a file under data/).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// No database (an in-memory store).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuthArg {
    /// JWT bearer tokens on write routes.
    Jwt,
    /// No authentication.
    None,
}

fn parse_type(s: &str) -> Result<ServiceType, String> {
    s.parse::<ServiceType>().map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// Service name: lowercase letters, digits and `-`, 3 to 50 characters (asked for when omitted in a terminal).
    name: Option<String>,
    /// Service type (see `microframework list types`).
    #[arg(short = 't', long = "type", value_name = "TYPE", default_value = "rest", value_parser = parse_type)]
    service_type: ServiceType,
    /// Database.
    #[arg(long = "with-database", value_name = "DB", value_enum)]
    database: Option<DbArg>,
    /// Authentication.
    #[arg(long = "with-auth", value_name = "AUTH", value_enum)]
    auth: Option<AuthArg>,
    /// Messaging: `memory` (in-process) or `nats` (JetStream); see `microframework list features`.
    #[arg(long = "with-messaging", value_name = "BROKER")]
    messaging: Option<String>,
    /// Cache: `memory` (in-process) or `redis`; see `microframework list features`.
    #[arg(long = "with-cache", value_name = "STORE")]
    cache: Option<String>,
    /// The CRUD resource, plural snake_case.
    #[arg(long, default_value = "users")]
    resource: String,
    /// Depend on a framework source checkout at this path (default when this CLI runs from one).
    #[arg(long, value_name = "PATH", conflicts_with = "framework_version")]
    framework_path: Option<PathBuf>,
    /// Depend on this framework version from the registry.
    #[arg(long, value_name = "VERSION")]
    framework_version: Option<String>,
    /// Directory to create (default: ./NAME).
    #[arg(long, short = 'o', visible_alias = "output", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Write into an existing non-empty directory, overwriting files of the same name.
    #[arg(long)]
    force: bool,
    /// Print the files that would be written, and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not run `git init`.
    #[arg(long)]
    no_git: bool,
    /// Build and start the service once generated.
    #[arg(long)]
    run: bool,
}

/// The framework checkout this CLI was built from, if it still exists.
fn source_checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?;
    root.join("crates/microframework/Cargo.toml").is_file().then(|| root.to_path_buf())
}

fn ask(args: &mut NewArgs) -> Result<(), Failure> {
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if args.name.is_none() {
        if !interactive {
            return Err(Failure::usage(
                "missing the service name: microframework new NAME (stdin is not a terminal, so there is no prompt)",
            ));
        }
        let name: String = dialoguer::Input::new()
            .with_prompt("Service name")
            .validate_with(|n: &String| validate_name(n).map_err(|e| e.to_string()))
            .interact_text()
            .map_err(|e| Failure::failed(format!("prompt failed: {e}")))?;
        args.name = Some(name);
        if args.database.is_none() {
            let choices = ["sqlite", "postgres", "mysql", "none"];
            let i = dialoguer::Select::new()
                .with_prompt("Database")
                .items(choices)
                .default(0)
                .interact()
                .map_err(|e| Failure::failed(format!("prompt failed: {e}")))?;
            args.database = Some([DbArg::Sqlite, DbArg::Postgres, DbArg::Mysql, DbArg::None][i]);
        }
        if args.auth.is_none() {
            let i = dialoguer::Select::new()
                .with_prompt("Authentication")
                .items(["none", "jwt"])
                .default(0)
                .interact()
                .map_err(|e| Failure::failed(format!("prompt failed: {e}")))?;
            args.auth = Some([AuthArg::None, AuthArg::Jwt][i]);
        }
    }
    Ok(())
}

pub(crate) fn run(mut args: NewArgs) -> Result<(), Failure> {
    let started = Instant::now();
    ask(&mut args)?;
    let name = args.name.clone().unwrap_or_default();
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&name));
    let framework = match (&args.framework_path, &args.framework_version, source_checkout()) {
        // An absolute path is kept; a relative one (from the current directory) is written
        // relative to the service, so that the pair can move together (as examples/ do).
        (Some(p), _, _) if p.is_absolute() => FrameworkSource::Path(p.clone()),
        (Some(p), _, _) => {
            let root =
                p.canonicalize().map_err(|e| Failure::usage(format!("--framework-path {}: {e}", p.display())))?;
            if !root.join("crates/microframework/Cargo.toml").is_file() {
                return Err(Failure::usage(format!(
                    "invalid --framework-path: `{}` is not a MicroFramework checkout (no crates/microframework/Cargo.toml)",
                    p.display()
                )));
            }
            FrameworkSource::Path(relative_to_service(&root, &dir)?)
        }
        (None, Some(v), _) => FrameworkSource::Version(v.clone()),
        (None, None, Some(root)) => FrameworkSource::Path(root),
        (None, None, None) => FrameworkSource::Version(env!("CARGO_PKG_VERSION").to_owned()),
    };
    let options = Options {
        name: name.clone(),
        service_type: args.service_type,
        database: match args.database.unwrap_or(DbArg::Sqlite) {
            DbArg::Sqlite => DatabaseKind::Sqlite,
            DbArg::Postgres => DatabaseKind::Postgres,
            DbArg::Mysql => DatabaseKind::Mysql,
            DbArg::None => DatabaseKind::None,
        },
        auth: match args.auth.unwrap_or(AuthArg::None) {
            AuthArg::Jwt => AuthKind::Jwt,
            AuthArg::None => AuthKind::None,
        },
        resource: args.resource.clone(),
        framework: framework.clone(),
        resources: Vec::new(),
        handlers: Vec::new(),
        protobufs: Vec::new(),
        graphql_types: Vec::new(),
        features: Default::default(),
    };
    let mut options = options;
    for (feature, provider) in [("messaging", &args.messaging), ("cache", &args.cache)] {
        if let Some(provider) = provider {
            options = options.with_layer(feature, provider).map_err(|e| Failure::usage(e.to_string()))?;
        }
    }
    let project = render(&options).map_err(|e| Failure::usage(e.to_string()))?;

    if args.dry_run {
        let occupied = std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(false);
        if occupied && !args.force {
            return Err(Failure::usage(microframework_gen::GenError::TargetNotEmpty(dir.clone()).to_string()));
        }
        out!("Would create `{name}` in {} ({} files):", dir.display(), project.files.len() + 1);
        for f in &project.files {
            out!("  {:<60} {:>7} bytes  {:?}", f.path.display(), f.contents.len(), f.policy);
        }
        out!("  {:<60}", microframework_gen::MANIFEST_FILE);
        return Ok(());
    }

    let report = write_new(&project, &dir, args.force).map_err(|e| match e {
        microframework_gen::GenError::TargetNotEmpty(_) => Failure::usage(e.to_string()),
        other => Failure::failed(other.to_string()),
    })?;
    if let FrameworkSource::Path(root) = &framework {
        seed_lockfile(&dir.join(root), &dir, &options);
    }
    if !args.no_git {
        match Command::new("git").args(["init", "-q"]).current_dir(&dir).status() {
            Ok(s) if s.success() => {}
            _ => eprintln!("warning: `git init` failed; the service was generated without a repository"),
        }
    }
    out!(
        "Created `{name}` ({} service, database: {}, auth: {}) in {} with {} files in {} ms.",
        options.service_type,
        options.database.as_str(),
        options.auth.as_str(),
        dir.display(),
        report.written.len(),
        started.elapsed().as_millis()
    );
    if !args.run {
        let try_it = match options.service_type {
            ServiceType::Grpc => "grpcurl -plaintext 127.0.0.1:50051 list",
            ServiceType::Graphql => "open http://127.0.0.1:8080/graphql (GraphiQL)",
            ServiceType::Websocket => "websocat ws://127.0.0.1:8080/ws (see docs/api.md)",
            _ => "open http://127.0.0.1:8080/docs (Swagger UI)",
        };
        out!("\nNext:\n  cd {}\n  cargo run\n  {try_it}\n  make test", dir.display());
        return Ok(());
    }
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--quiet"]).current_dir(&dir);
    if let FrameworkSource::Path(root) = &framework
        && std::env::var_os("CARGO_TARGET_DIR").is_none()
    {
        // Reuse the framework's compiled dependencies.
        cmd.env("CARGO_TARGET_DIR", dir.join(root).join("target"));
    }
    out!("\nBuilding and starting `{name}` (Ctrl-C to stop)...");
    let status = cmd.status().map_err(|e| Failure::failed(format!("cannot run cargo: {e}")))?;
    if status.success() || status.code().is_none() {
        Ok(())
    } else {
        Err(Failure::failed(format!("`cargo run` exited with {status}")))
    }
}

/// The path from the (future) service directory `dir` to the framework `root`.
fn relative_to_service(root: &Path, dir: &Path) -> Result<PathBuf, Failure> {
    let abs = std::path::absolute(dir).map_err(|e| Failure::usage(format!("--dir {}: {e}", dir.display())))?;
    // Resolve what exists of the service path (a parent may be a symlink), keep the rest.
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut service = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        service.push(name);
    }
    let common = root.components().zip(service.components()).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in service.components().skip(common) {
        rel.push("..");
    }
    for c in root.components().skip(common) {
        rel.push(c);
    }
    Ok(if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel })
}

/// Starts the service's lockfile from the framework's, so that it builds with the same, tested
/// dependency versions (and reuses their compiled artifacts); cargo then trims what is unused.
///
/// Every service gets one, because the image builds every service as a workspace of its own
/// (`COPY Cargo.toml Cargo.lock`, `cargo build --locked`). A service inside the checkout that is
/// a member of its workspace (such as examples/) builds with the workspace's lockfile on the
/// disk, where cargo trims nothing in the service's directory; its own lockfile is trimmed in a
/// scratch copy that depends on the checkout by absolute path (a lockfile records no paths).
pub(crate) fn seed_lockfile(root: &Path, dir: &Path, options: &Options) {
    let lock = root.join("Cargo.lock");
    if !lock.is_file() || dir.join("Cargo.lock").exists() {
        return;
    }
    // target/ is excluded from the framework's workspace, so services there are not members.
    let member = match (root.canonicalize(), dir.canonicalize()) {
        (Ok(root), Ok(dir)) => dir.starts_with(&root) && !dir.starts_with(root.join("target")),
        _ => false,
    };
    if !member {
        if std::fs::copy(&lock, dir.join("Cargo.lock")).is_ok() {
            trim_lockfile(dir);
        }
        return;
    }
    let Ok(root) = root.canonicalize() else { return };
    let scratch = std::env::temp_dir().join(format!("microframework-lock-{}-{}", std::process::id(), options.name));
    let _ = std::fs::remove_dir_all(&scratch);
    let standalone = Options { framework: FrameworkSource::Path(root), ..options.clone() };
    let trimmed = render(&standalone).is_ok_and(|project| write_new(&project, &scratch, false).is_ok())
        && std::fs::copy(&lock, scratch.join("Cargo.lock")).is_ok()
        && trim_lockfile(&scratch)
        && std::fs::copy(scratch.join("Cargo.lock"), dir.join("Cargo.lock")).is_ok();
    let _ = std::fs::remove_dir_all(&scratch);
    if !trimmed {
        eprintln!(
            "warning: could not write Cargo.lock (cargo update --offline failed); the image build needs one: \
             see deployments/docker/Dockerfile"
        );
    }
}

/// `cargo update --offline --workspace` on the service: resolves it against its lockfile, keeping
/// the locked versions, adding what is missing from the local index and dropping what it does not
/// use. Unlike `cargo metadata`, it needs no crate downloaded. Whether it succeeded.
pub(crate) fn trim_lockfile(dir: &Path) -> bool {
    Command::new("cargo")
        .args(["update", "--offline", "--workspace", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
