//! Formatting generated Rust with rustfmt, in one process for all files.

use std::process::{Command, Stdio};

use crate::render::File;

/// Formats every `.rs` file with `rustfmt --edition 2024`. Without rustfmt the templates'
/// own formatting is kept (they are written formatted).
pub(crate) fn rustfmt(files: &mut [File]) {
    let Ok(dir) = tempfile_dir() else { return };
    // Format with the service's own rustfmt.toml, so that `cargo fmt --check` agrees.
    if let Some(cfg) = files.iter().find(|f| f.path.as_os_str() == "rustfmt.toml") {
        let _ = std::fs::write(dir.join("rustfmt.toml"), &cfg.contents);
    }
    let mut paths = Vec::new();
    // Files keep their relative paths so that `mod x;` declarations resolve.
    for (i, f) in files.iter().enumerate() {
        if f.path.extension().is_some_and(|e| e == "rs") {
            let p = dir.join(&f.path);
            let written =
                p.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&p, &f.contents));
            if written.is_err() {
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
            paths.push((i, p));
        }
    }
    if !paths.is_empty() {
        let status = Command::new(std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into()))
            .args(["--edition", "2024", "--quiet"])
            .args(paths.iter().map(|(_, p)| p))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            for (i, p) in &paths {
                if let Ok(text) = std::fs::read_to_string(p) {
                    files[*i].contents = text;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let dir = base.join(format!("microframework-gen-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no temporary directory available"))
}
