//! Writing a rendered project to disk without leaving anything half-written.

use std::path::{Path, PathBuf};

use crate::error::GenError;
use crate::manifest::MANIFEST_FILE;
use crate::render::Project;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// The service directory.
    pub dir: PathBuf,
    /// Files written, relative to `dir` (the manifest included).
    pub written: Vec<PathBuf>,
}

fn is_empty_dir(dir: &Path) -> Result<bool, GenError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(GenError::io(dir, e)),
    }
}

fn write_files(project: &Project, root: &Path) -> Result<Vec<PathBuf>, GenError> {
    let mut written = Vec::with_capacity(project.files.len() + 1);
    for f in &project.files {
        let path = root.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| GenError::io(parent, e))?;
        }
        std::fs::write(&path, &f.contents).map_err(|e| GenError::io(&path, e))?;
        #[cfg(unix)]
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| GenError::io(&path, e))?;
        }
        written.push(f.path.clone());
    }
    let manifest = project.manifest().to_toml()?;
    let path = root.join(MANIFEST_FILE);
    std::fs::write(&path, manifest).map_err(|e| GenError::io(&path, e))?;
    written.push(PathBuf::from(MANIFEST_FILE));
    Ok(written)
}

/// Writes `project` into `dir`.
///
/// A new (or empty) `dir` is filled atomically: the files go to a temporary sibling directory
/// that is renamed into place, so a failure leaves nothing behind. An existing non-empty `dir`
/// is refused unless `force`, in which case generated files overwrite files of the same name.
pub fn write_new(project: &Project, dir: &Path, force: bool) -> Result<WriteReport, GenError> {
    if !is_empty_dir(dir)? {
        if !force {
            return Err(GenError::TargetNotEmpty(dir.to_owned()));
        }
        if !dir.is_dir() {
            return Err(GenError::io(dir, std::io::Error::other("exists and is not a directory")));
        }
        let written = write_files(project, dir)?;
        return Ok(WriteReport { dir: dir.to_owned(), written });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| GenError::io(&parent, e))?;
    let file_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "service".into());
    let staging = parent.join(format!(".{file_name}.microframework-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(|e| GenError::io(&parent, e))?;
    let result = write_files(project, &staging).and_then(|written| {
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(|e| GenError::io(dir, e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| GenError::io(dir, e))?;
        Ok(written)
    });
    match result {
        Ok(written) => Ok(WriteReport { dir: dir.to_owned(), written }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}
