//! The image's build stage works wherever the service was generated: outside the framework
//! checkout, inside it under `target/` (the README's demo), and as a member of its workspace
//! (`examples/users-service`).
//!
//! There is no Docker engine here, so this does the closest real thing. It reads the build stage
//! of the generated Dockerfile and reproduces every `COPY` into a directory laid out as the
//! image's filesystem would be: sources from the service's directory (the build context, minus
//! what `.dockerignore` leaves out) and, for `--from=microframework`, from the framework checkout
//! that the Makefile passes as that named context. The `FROM` image's own files are not there:
//! only the `COPY`s, so anything the build needs and the Dockerfile does not copy is missing
//! here as it would be in the image. Then it runs the stage's `RUN` commands in the `WORKDIR`.
//! `cargo build --release --locked` becomes `cargo metadata --locked --offline` followed by
//! `cargo check --release --locked --offline`: the same workspace, lockfile, resolution, build
//! scripts and type checking, without code generation, which keeps the test to seconds once the
//! dependencies are checked (the `install` of the binary for the runtime stage is skipped: a check
//! makes no binary). All builds share one target directory, `target/docker-layout`.
//!
//! It also resolves the compose file's build `context` and `additional_contexts` from the compose
//! file's directory, as Docker Compose does, and the `FRAMEWORK_PATH` of the Makefile and the
//! scripts from the service's directory, and checks that each names the service or the checkout.

mod common;

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_yaml::Value;

use common::{cli, text, workspace_root};

/// A directory outside the checkout that stays between runs, so that the copied framework keeps
/// its path and cargo its compiled dependencies; one per checkout.
fn scratch(checkout: &Path) -> PathBuf {
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    let hash = checkout
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    std::env::temp_dir().join(format!("microframework-docker-layout-{hash:016x}"))
}

struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of a Dockerfile: continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.trim().split_once(char::is_whitespace).unwrap_or((current.trim(), ""));
                out.push(Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_owned() });
                current.clear();
            }
        }
    }
    out
}

/// `dest` from `workdir` the way Docker resolves it: absolute, `..` stops at `/`.
fn image_path(workdir: &str, dest: &str) -> String {
    let joined = if dest.starts_with('/') { PathBuf::from(dest) } else { Path::new(workdir).join(dest) };
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Where an absolute image path lies in the reproduced filesystem at `root`.
fn in_root(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// Copies a file keeping its modification time, as `COPY` does (so that cargo's fingerprints of
/// unchanged framework files stay valid from one run to the next).
fn copy_file(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
    let modified = std::fs::metadata(src).unwrap().modified().unwrap();
    std::fs::File::options().write(true).open(dst).unwrap().set_modified(modified).unwrap();
}

/// `COPY dir dest` copies the directory's contents into `dest`.
fn copy_tree(src: &Path, dst: &Path) {
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&from, &to);
        } else {
            copy_file(&from, &to);
        }
    }
}

/// Whether `.dockerignore` leaves `source` (a path in the build context) out. The generated file
/// uses top-level names, `dir/` and `*.ext` patterns only.
fn dockerignored(context: &Path, source: &str) -> bool {
    let Ok(rules) = std::fs::read_to_string(context.join(".dockerignore")) else { return false };
    let first = source.trim_start_matches("./").split('/').next().unwrap_or_default();
    rules.lines().map(str::trim).filter(|r| !r.is_empty() && !r.starts_with('#')).any(|rule| {
        let rule = rule.trim_end_matches('/');
        match rule.strip_prefix('*') {
            Some(suffix) => first.ends_with(suffix),
            None => rule == first,
        }
    })
}

/// A path as a script or tool run in `dir` sees it.
fn resolve(dir: &Path, path: &str) -> PathBuf {
    let p = dir.join(path);
    p.canonicalize().unwrap_or_else(|e| panic!("{} (from {path:?} in {}): {e}", p.display(), dir.display()))
}

/// The framework checkout that `make docker-build` passes as the named context `microframework`,
/// after checking that the scripts and the compose file pass the same one (and the compose file
/// the service as the build context).
fn framework_context(service: &Path, checkout: &Path) -> PathBuf {
    let checkout = checkout.canonicalize().unwrap();
    let makefile = std::fs::read_to_string(service.join("Makefile")).unwrap();
    let from_make = makefile
        .lines()
        .find_map(|l| l.strip_prefix("FRAMEWORK_PATH ?= "))
        .unwrap_or_else(|| panic!("{}: no FRAMEWORK_PATH in the Makefile", service.display()));
    assert_eq!(resolve(service, from_make), checkout, "{}: the Makefile's FRAMEWORK_PATH", service.display());
    for script in ["scripts/build.sh", "scripts/deploy.sh"] {
        let text = std::fs::read_to_string(service.join(script)).unwrap();
        let default = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("framework_path=\"${FRAMEWORK_PATH:-")?.strip_suffix("}\""))
            .unwrap_or_else(|| panic!("{}: no framework_path in {script}", service.display()));
        // The scripts cd to the service's directory first.
        assert_eq!(resolve(service, default), checkout, "{}: {script}", service.display());
    }
    let compose_dir = service.join("deployments/docker");
    let compose: Value =
        serde_yaml::from_str(&std::fs::read_to_string(compose_dir.join("docker-compose.yml")).unwrap()).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    assert!(!services.is_empty(), "{}: no service in docker-compose.yml", service.display());
    let build = &services.values().next().unwrap()["build"];
    let context = build["context"].as_str().unwrap();
    assert_eq!(resolve(&compose_dir, context), service.canonicalize().unwrap(), "compose build.context");
    let named = build["additional_contexts"]["microframework"].as_str().unwrap();
    assert_eq!(resolve(&compose_dir, named), checkout, "compose additional_contexts.microframework");
    service.join(from_make)
}

/// Reproduces the build stage of `service`'s Dockerfile under `root` and runs it; `before_cargo`
/// runs once the files are in place, `hint` ends a failure's message.
fn build_stage(service: &Path, framework: &Path, root: &Path, before_cargo: impl FnOnce(), hint: &str) {
    // Where the named context is now: `before_cargo` may re-point a symlink on the way to it.
    let framework = framework.canonicalize().unwrap();
    let dockerfile = std::fs::read_to_string(service.join("deployments/docker/Dockerfile")).unwrap();
    let all = instructions(&dockerfile);
    let start = all
        .iter()
        .position(|i| i.keyword == "FROM" && i.args.ends_with(" AS build"))
        .unwrap_or_else(|| panic!("{}: no `FROM ... AS build`", service.display()));
    let end = all.iter().skip(start + 1).position(|i| i.keyword == "FROM").map_or(all.len(), |p| p + start + 1);
    let mut workdir = "/".to_owned();
    let mut before_cargo = Some(before_cargo);
    let mut cargo_runs = 0;
    for instruction in &all[start + 1..end] {
        match instruction.keyword.as_str() {
            "WORKDIR" => {
                workdir = image_path(&workdir, &instruction.args);
                std::fs::create_dir_all(in_root(root, &workdir)).unwrap();
            }
            "COPY" => {
                let words: Vec<&str> = instruction.args.split_whitespace().collect();
                let (flags, paths): (Vec<&str>, Vec<&str>) = words.iter().partition(|w| w.starts_with("--"));
                let (dest, sources) = paths.split_last().unwrap();
                let (context, build_context) = match flags.iter().find_map(|f| f.strip_prefix("--from=")) {
                    None => (service, true),
                    Some("microframework") => (framework.as_path(), false),
                    Some(other) => panic!("{}: COPY --from={other} in the build stage", service.display()),
                };
                let dest_image = image_path(&workdir, dest);
                for source in sources {
                    let from = context.join(source);
                    assert!(
                        from.exists(),
                        "{}: COPY {source}: not in the context {}",
                        service.display(),
                        context.display()
                    );
                    if build_context {
                        assert!(
                            !dockerignored(service, source),
                            "{}: .dockerignore leaves out {source}",
                            service.display()
                        );
                    }
                    let to = in_root(root, &dest_image);
                    if from.is_dir() {
                        copy_tree(&from, &to);
                    } else if dest.ends_with('/') || sources.len() > 1 {
                        copy_file(&from, &to.join(from.file_name().unwrap()));
                    } else {
                        copy_file(&from, &to);
                    }
                }
            }
            "RUN" => {
                if let Some(hook) = before_cargo.take() {
                    hook();
                }
                cargo_runs += run_step(service, root, &workdir, &instruction.args, hint);
            }
            "ENV" | "ARG" | "LABEL" | "USER" | "SHELL" => {}
            other => panic!("{}: unexpected {other} in the build stage", service.display()),
        }
    }
    assert!(cargo_runs >= 2, "{}: the build stage runs cargo for the dependencies and the service", service.display());
}

/// Runs one `RUN` of the build stage in `workdir`, cargo offline (after fetching from the registry
/// what the local cache lacks) and checking instead of building;
/// returns how many cargo builds it held.
fn run_step(service: &Path, root: &Path, workdir: &str, command: &str, hint: &str) -> usize {
    let target_dir = workspace_root().join("target/docker-layout");
    let cargo = Path::new(env!("CARGO"));
    let path = std::env::join_paths(
        std::iter::once(cargo.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut cargo_runs = 0;
    let mut steps = Vec::new();
    for step in command.split("&&").map(str::trim) {
        if let Some(rest) = step.strip_prefix("cargo build") {
            assert!(rest.contains("--locked") && rest.contains("--release"), "{}: {step}", service.display());
            // The image's build downloads what the lock file names; here the local cache stands in
            // for the network. A fresh machine's cache lacks the crates of other platforms (cargo
            // only downloads the host's), which `cargo metadata` needs: fetch those from the
            // registry, then build offline.
            steps.push(
                "(cargo metadata --locked --offline --format-version 1 > /dev/null 2>&1 || cargo fetch --locked)"
                    .to_owned(),
            );
            steps.push(format!("cargo check{rest} --offline"));
            cargo_runs += 1;
        } else if step.starts_with("install ") {
            // Puts the binary into /out for the runtime stage; a check makes no binary.
        } else {
            steps.push(step.to_owned());
        }
    }
    let script = steps.join(" && ");
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(in_root(root, workdir))
        .env("PATH", &path)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: `{script}` failed in {workdir} (image root {}):\n{}{}{hint}",
        service.display(),
        root.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    cargo_runs
}

#[cfg(unix)]
#[test]
fn the_image_build_stage_works_wherever_the_service_was_generated() {
    let checkout = workspace_root().canonicalize().unwrap();
    let scratch = scratch(&checkout);
    let started = Instant::now();

    // 1. Outside the checkout, depending on it by absolute path (what an installed CLI writes).
    // The path is a symlink this test owns: to the checkout while generating (the named context),
    // then to the copy in the reproduced image, so that cargo there reads only what was copied.
    let outside = scratch.join("outside");
    let link = outside.join("microframework");
    let image = outside.join("image");
    let _ = std::fs::remove_dir_all(outside.join("host"));
    let _ = std::fs::remove_dir_all(&image);
    std::fs::create_dir_all(outside.join("host")).unwrap();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&checkout, &link).unwrap();
    let service = outside.join("host/layout-grpc");
    let out = cli(
        &[
            "new",
            "layout-grpc",
            "--type=grpc",
            "--with-database=postgres",
            "--with-auth=jwt",
            "--no-git",
            "--framework-path",
            link.to_str().unwrap(),
            "--dir",
            service.to_str().unwrap(),
        ],
        &outside,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(service.join("Cargo.lock").is_file(), "the lockfile is seeded");
    let framework = framework_context(&service, &checkout);
    build_stage(
        &service,
        &framework,
        &image,
        || {
            std::fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(in_root(&image, link.to_str().unwrap()), &link).unwrap();
        },
        "",
    );
    eprintln!("outside the checkout (absolute path): {:.1?}", started.elapsed());

    // 2. Inside the checkout under target/, like the README's demo, depending on it by a relative
    // path (../..): the checkout is an ancestor of the service.
    let started = Instant::now();
    let image = scratch.join("inside-image");
    let _ = std::fs::remove_dir_all(&image);
    let dir = "target/docker-layout-demo-service";
    let service = checkout.join(dir);
    let _ = std::fs::remove_dir_all(&service);
    let out = cli(&["new", "demo-service", "--dir", dir, "--framework-path", ".", "--no-git"], &checkout);
    assert!(out.status.success(), "{}", text(&out));
    let cargo_toml = std::fs::read_to_string(service.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("path = \"../../crates/microframework\""), "{cargo_toml}");
    let framework = framework_context(&service, &checkout);
    build_stage(&service, &framework, &image, || {}, "");
    eprintln!("inside the checkout, under target/ (relative path): {:.1?}", started.elapsed());

    // 3. examples/users-service, a member of the checkout's workspace on the disk. Its image puts
    // the checkout where case 2's does, so it shares that root (and the checked framework).
    let started = Instant::now();
    let service = checkout.join("examples/users-service");
    let refresh = "\nIf examples/users-service/Cargo.lock is missing or stale (the workspace's dependencies \
                   changed), delete it and regenerate the example with the command that \
                   crates/cli/tests/examples.rs prints: it writes the lockfile the image uses.";
    assert!(service.join("Cargo.lock").is_file(), "examples/users-service has no Cargo.lock of its own.{refresh}");
    let framework = framework_context(&service, &checkout);
    build_stage(&service, &framework, &image, || {}, refresh);
    eprintln!("examples/users-service (a workspace member): {:.1?}", started.elapsed());
}
