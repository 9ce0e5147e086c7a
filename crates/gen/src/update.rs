//! `microframework update`: re-render the generated files of a service for this generator
//! version, leaving every user-owned file alone.
//!
//! [`plan_update`] reads the service's manifest, renders its options with this generator and
//! compares, for every file with [`Policy::Generated`], what is on disk with what would be
//! written. Nothing is written until [`apply_update`]; a file the user edited although it is
//! generated (its hash differs from the manifest's) is not overwritten unless forced.

use std::path::{Path, PathBuf};

use crate::GENERATOR_VERSION;
use crate::error::GenError;
use crate::manifest::{FileEntry, MANIFEST_FILE, Manifest, sha256_hex};
use crate::render::{Policy, render};

/// What happens to one generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// The file does not exist yet (new in this generator version, or deleted).
    Create,
    /// The file is replaced by this version's rendering.
    Rewrite,
}

/// One generated file that would change.
#[derive(Debug, Clone)]
pub struct Change {
    /// Path relative to the service root.
    pub path: PathBuf,
    /// Created or rewritten.
    pub kind: ChangeKind,
    /// Whether the user edited the file since it was generated (its hash is not the manifest's).
    pub edited: bool,
    /// The unified diff from what is on disk to what would be written.
    pub diff: String,
    contents: String,
}

/// What `update` would do.
#[derive(Debug, Clone)]
pub struct UpdatePlan {
    /// The service directory.
    pub dir: PathBuf,
    /// The generator version recorded in the manifest.
    pub from_version: String,
    /// This generator's version.
    pub to_version: String,
    /// The generated files that would change, in path order.
    pub changes: Vec<Change>,
    /// Files the manifest lists as generated that this version no longer generates: left in place.
    pub orphaned: Vec<String>,
    manifest: Manifest,
}

impl UpdatePlan {
    /// Whether nothing would be written (no file changes and the manifest already names this
    /// version).
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty() && self.from_version == self.to_version
    }

    /// The generated files the user edited, which [`apply_update`] only overwrites when forced.
    pub fn edited(&self) -> Vec<&Path> {
        self.changes.iter().filter(|c| c.edited).map(|c| c.path.as_path()).collect()
    }
}

/// `x.y.z` as numbers; anything after `-` or `+` is ignored.
fn version_key(v: &str) -> Option<Vec<u64>> {
    let core = v.split(['-', '+']).next()?;
    core.split('.').map(|p| p.parse().ok()).collect()
}

/// Reads the manifest of the service at `dir`, refusing a directory that is not a generated
/// service and a manifest that does not parse or comes from a newer generator.
pub(crate) fn read_service(dir: &Path) -> Result<Manifest, GenError> {
    if !dir.join(MANIFEST_FILE).is_file() {
        return Err(GenError::NotAService(dir.to_owned()));
    }
    let old = Manifest::read(dir)?;
    match (version_key(&old.generator_version), version_key(GENERATOR_VERSION)) {
        (Some(theirs), Some(ours)) if theirs > ours => {
            Err(GenError::NewerManifest { found: old.generator_version.clone(), ours: GENERATOR_VERSION.into() })
        }
        (None, _) => Err(GenError::Manifest(format!(
            "{}: generator_version `{}` is not a version such as 0.1.0",
            dir.join(MANIFEST_FILE).display(),
            old.generator_version
        ))),
        _ => Ok(old),
    }
}

/// Reads the service at `dir` and works out what `update` would change. Writes nothing.
///
/// # Errors
///
/// `dir` is not a generated service (no manifest), the manifest does not parse or was written by
/// a newer generator, or rendering fails.
pub fn plan_update(dir: &Path) -> Result<UpdatePlan, GenError> {
    let old = read_service(dir)?;
    let project = render(&old.options)?;
    let mut manifest = old.clone();
    manifest.generator_version = GENERATOR_VERSION.to_owned();
    let mut changes = Vec::new();
    for file in project.files.iter().filter(|f| f.policy == Policy::Generated) {
        let key = file.path.to_string_lossy().replace('\\', "/");
        let path = dir.join(&file.path);
        let on_disk = read_if_exists(&path)?;
        manifest
            .files
            .insert(key.clone(), FileEntry { policy: Policy::Generated, sha256: sha256_hex(file.contents.as_bytes()) });
        if on_disk.as_deref() == Some(file.contents.as_str()) {
            continue;
        }
        let edited = match (&on_disk, old.files.get(&key)) {
            (Some(current), Some(entry)) => sha256_hex(current.as_bytes()) != entry.sha256,
            // On disk but never generated: someone else's file in the generated folder.
            (Some(_), None) => true,
            (None, _) => false,
        };
        let before = on_disk.clone().unwrap_or_default();
        let diff = similar::TextDiff::from_lines(&before, &file.contents)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{key}"), &format!("b/{key}"))
            .to_string();
        changes.push(Change {
            path: file.path.clone(),
            kind: if on_disk.is_some() { ChangeKind::Rewrite } else { ChangeKind::Create },
            edited,
            diff,
            contents: file.contents.clone(),
        });
    }
    let rendered: Vec<String> = project.files.iter().map(|f| f.path.to_string_lossy().replace('\\', "/")).collect();
    let orphaned = old
        .files
        .iter()
        .filter(|(path, entry)| entry.policy == Policy::Generated && !rendered.contains(path))
        .map(|(path, _)| path.clone())
        .collect();
    Ok(UpdatePlan {
        dir: dir.to_owned(),
        from_version: old.generator_version,
        to_version: GENERATOR_VERSION.to_owned(),
        changes,
        orphaned,
        manifest,
    })
}

/// Writes the plan: the changed generated files, then the manifest with this generator's
/// version and the new hashes. Each file is written to a temporary sibling and renamed into
/// place, so none is left half-written.
///
/// # Errors
///
/// The user edited generated files and `force` is off (nothing is written), or writing fails.
pub fn apply_update(plan: &UpdatePlan, force: bool) -> Result<Vec<PathBuf>, GenError> {
    let edited = plan.edited();
    if !edited.is_empty() && !force {
        return Err(GenError::EditedGenerated(edited.iter().map(|p| p.to_path_buf()).collect()));
    }
    let mut written = Vec::new();
    for change in &plan.changes {
        let path = plan.dir.join(&change.path);
        write_atomically(&path, change.contents.as_bytes())?;
        written.push(change.path.clone());
    }
    if !plan.is_noop() {
        let path = plan.dir.join(MANIFEST_FILE);
        write_atomically(&path, plan.manifest.to_toml()?.as_bytes())?;
        written.push(PathBuf::from(MANIFEST_FILE));
    }
    Ok(written)
}

/// The file at `path` as text, or `None` when there is none.
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<String>, GenError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(GenError::io(path, e)),
    }
}

pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), GenError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GenError::io(parent, e))?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.microframework-{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(|e| GenError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        GenError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_key("0.10.0") > version_key("0.9.9"));
        assert_eq!(version_key("1.2.3-beta.1"), Some(vec![1, 2, 3]));
        assert_eq!(version_key("x.y"), None);
    }
}
