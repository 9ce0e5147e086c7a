//! `microframework add FEATURE --provider P`: apply a feature layer to an existing service, as
//! `new --with-FEATURE=P` would have.
//!
//! [`plan_add`] renders the service twice with this generator: as its manifest describes it (the
//! base) and with the layer (the target). For each file of the target:
//!
//! - a file the service does not have yet is created;
//! - a file the layer does not change, or that already reads as the target, is left alone;
//! - a file nobody edited since it was generated (its hash is the manifest's) is rewritten;
//! - a file the user edited is merged structurally (TOML, YAML; see `merge`), keeping the
//!   edits; when that is not possible (a Rust file, a conflicting value) the file is left alone
//!   and the layer's version is written beside it as `FILE.new`, unless forced.
//!
//! The manifest then records the new options, the applied layers and the hash of every file as
//! the target generates it, so a pristine service after `add` is byte for byte the service `new`
//! generates with the flag, manifest included.

use std::path::{Path, PathBuf};

use crate::GENERATOR_VERSION;
use crate::error::GenError;
use crate::layers::feature;
use crate::manifest::{MANIFEST_FILE, Manifest, sha256_hex};
use crate::render::render;
use crate::update::{read_if_exists, read_service, write_atomically};

/// What `add` does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddAction {
    /// The layer brings a new file.
    Create,
    /// The file was as generated; it is replaced by the layer's version.
    Rewrite,
    /// The user edited the file; the layer's change is merged into it and the edits are kept.
    Merge,
    /// The user edited the file and the change cannot be merged: the file is left alone and the
    /// layer's version is written beside it as `FILE.new`.
    WriteNew,
    /// The user edited the file; `--force` replaces it with the layer's version.
    Overwrite,
    /// The user deleted a file the layer would change; it stays deleted.
    SkipDeleted,
    /// The layer no longer generates the file and nobody edited it: it is deleted.
    Remove,
    /// The layer no longer generates the file, but the user edited it: it stays (delete it
    /// yourself if nothing uses it; `--force` deletes it).
    KeepEdited,
}

impl AddAction {
    /// A short verb for reports.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Rewrite => "rewrite",
            Self::Merge => "merge",
            Self::WriteNew => "conflict",
            Self::Overwrite => "overwrite",
            Self::SkipDeleted => "skip",
            Self::Remove => "remove",
            Self::KeepEdited => "keep",
        }
    }
}

/// One file `add` touches.
#[derive(Debug, Clone)]
pub struct AddChange {
    /// The file, relative to the service root.
    pub path: PathBuf,
    /// What happens to it.
    pub action: AddAction,
    /// Why the file could not be merged ([`AddAction::WriteNew`]).
    pub reason: Option<String>,
    /// The unified diff from the file on disk to what is written (for `WriteNew`, to the `.new`).
    pub diff: String,
    contents: String,
    executable: bool,
}

impl AddChange {
    /// Where the contents go: the file itself, or `FILE.new` beside it.
    pub fn written_path(&self) -> PathBuf {
        match self.action {
            AddAction::WriteNew => {
                let mut p = self.path.clone().into_os_string();
                p.push(".new");
                PathBuf::from(p)
            }
            _ => self.path.clone(),
        }
    }
}

/// What `add` would do.
#[derive(Debug, Clone)]
pub struct AddPlan {
    /// The service directory.
    pub dir: PathBuf,
    /// The feature (for `generate`: `resource` or `handler`).
    pub feature: &'static str,
    /// The provider (for `generate`: the name of the resource or handler).
    pub provider: String,
    /// The layer is applied already: nothing to do.
    pub already_applied: bool,
    /// The files touched, in path order.
    pub changes: Vec<AddChange>,
    /// What the user has to do by hand (for example a line an older service's file lacks).
    pub notes: Vec<String>,
    pub(crate) manifest: Manifest,
}

impl AddPlan {
    /// A plan that changes nothing (`feature` is applied already).
    pub(crate) fn nothing(dir: &Path, feature: &'static str, provider: &str, manifest: Manifest) -> Self {
        Self {
            dir: dir.to_owned(),
            feature,
            provider: provider.to_owned(),
            already_applied: true,
            changes: Vec::new(),
            notes: Vec::new(),
            manifest,
        }
    }

    /// Files left alone because of the user's edits: the layer's version written beside them, or
    /// a file the layer no longer generates kept.
    pub fn conflicts(&self) -> impl Iterator<Item = &AddChange> {
        self.changes.iter().filter(|c| matches!(c.action, AddAction::WriteNew | AddAction::KeepEdited))
    }
}

fn diff(path: &str, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// Works out what applying `provider` (or the feature's default) of `feature_name` to the service
/// at `dir` would change. Writes nothing.
///
/// # Errors
///
/// An unknown feature or provider; `dir` is not a generated service, or its manifest comes from
/// another generator version (run `update` first); the feature is applied already with another
/// provider; reading or rendering fails.
pub fn plan_add(dir: &Path, feature_name: &str, provider: Option<&str>, force: bool) -> Result<AddPlan, GenError> {
    let f = feature(feature_name)?;
    let provider = provider.unwrap_or(f.default_provider().name).to_owned();
    let manifest = read_current_service(dir)?;
    let target_options = manifest.options.with_layer(f.name, &provider)?;
    let mut plan = AddPlan {
        dir: dir.to_owned(),
        feature: f.name,
        provider: provider.clone(),
        already_applied: false,
        changes: Vec::new(),
        notes: Vec::new(),
        manifest: manifest.clone(),
    };
    match manifest.options.provider_of(f.name) {
        Some(p) if p == provider => {
            plan.already_applied = true;
            return Ok(plan);
        }
        Some(p) => {
            return Err(GenError::LayerConflict(format!(
                "the service already has the {} layer with provider `{p}`, and a service has one {}: adding `{provider}` \
                 would conflict with it. Nothing was written. To switch, generate a new service with \
                 `--with-{}={provider}` and move your code over",
                f.name, f.name, f.name
            )));
        }
        None => {}
    }
    let (changes, new_manifest) = plan_change(dir, &manifest, &target_options, force)?;
    plan.changes = changes;
    plan.manifest = new_manifest;
    Ok(plan)
}

/// Reads the manifest of the service at `dir`, which this generator version must have written
/// (run `update` first otherwise), so that the base rendering is what was generated.
pub(crate) fn read_current_service(dir: &Path) -> Result<Manifest, GenError> {
    let manifest = read_service(dir)?;
    if manifest.generator_version != GENERATOR_VERSION {
        return Err(GenError::LayerConflict(format!(
            "the service was generated by microframework {}, and this is {GENERATOR_VERSION}: run `microframework update` \
             first, so that the change is applied to files of this version. Nothing was written",
            manifest.generator_version
        )));
    }
    Ok(manifest)
}

/// The changes that take the service at `dir` (described by `manifest`) to `target_options`,
/// file by file, and the manifest after them.
pub(crate) fn plan_change(
    dir: &Path,
    manifest: &Manifest,
    target_options: &crate::Options,
    force: bool,
) -> Result<(Vec<AddChange>, Manifest), GenError> {
    let mut changes: Vec<AddChange> = Vec::new();
    let base = render(&manifest.options)?;
    let target = render(target_options)?;
    for file in &target.files {
        let key = file.path.to_string_lossy().replace('\\', "/");
        let path = dir.join(&file.path);
        let on_disk = read_if_exists(&path)?;
        let base_file = base.file(&key);
        let recorded = manifest.files.get(&key).map(|e| e.sha256.as_str());
        let mut change = |action, reason: Option<String>, contents: String| {
            let before = if action == AddAction::WriteNew { "" } else { on_disk.as_deref().unwrap_or("") };
            let shown = if action == AddAction::WriteNew { format!("{key}.new") } else { key.clone() };
            changes.push(AddChange {
                path: file.path.clone(),
                action,
                reason,
                diff: diff(&shown, before, &contents),
                contents,
                executable: file.executable,
            });
        };
        let Some(current) = on_disk.as_deref() else {
            match (recorded, base_file) {
                // Generated once and deleted since: it stays deleted unless the layer changes it.
                (Some(_), Some(b)) if b.contents == file.contents => {}
                (Some(_), _) => change(AddAction::SkipDeleted, None, String::new()),
                (None, _) => change(AddAction::Create, None, file.contents.clone()),
            }
            continue;
        };
        if current == file.contents || base_file.is_some_and(|b| b.contents == file.contents) {
            continue;
        }
        if recorded == Some(sha256_hex(current.as_bytes()).as_str()) {
            change(AddAction::Rewrite, None, file.contents.clone());
            continue;
        }
        if force {
            change(AddAction::Overwrite, None, file.contents.clone());
            continue;
        }
        // Edited (or not generated at all): merge the layer's change into it when the base is
        // exactly what was generated.
        let merged = match base_file {
            Some(b) if recorded == Some(sha256_hex(b.contents.as_bytes()).as_str()) => {
                crate::merge::merge(&key, &b.contents, &file.contents, current)
            }
            Some(_) => Err("it was generated by another version, so there is no base to merge from".into()),
            None => Err("the file is yours: the service did not generate it".into()),
        };
        match merged {
            Ok(m) if m == current => {}
            Ok(m) => change(AddAction::Merge, None, m),
            Err(why) => change(AddAction::WriteNew, Some(why), file.contents.clone()),
        }
    }
    // Files the layer stops generating (a PodDisruptionBudget once SQLite pins one replica).
    for file in &base.files {
        let key = file.path.to_string_lossy().replace('\\', "/");
        if target.file(&key).is_some() {
            continue;
        }
        let path = dir.join(&file.path);
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let current = String::from_utf8_lossy(&bytes).into_owned();
        let pristine = manifest.files.get(&key).is_some_and(|e| e.sha256 == sha256_hex(&bytes));
        let action = if pristine || force { AddAction::Remove } else { AddAction::KeepEdited };
        changes.push(AddChange {
            path: file.path.clone(),
            action,
            reason: (action == AddAction::KeepEdited).then(|| "the layer no longer generates this file".to_owned()),
            diff: if action == AddAction::Remove { diff(&key, &current, "") } else { String::new() },
            contents: String::new(),
            executable: false,
        });
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((changes, Manifest::from_project(&target)))
}

/// Writes the plan: every change (each file written to a temporary sibling and renamed into
/// place), then the manifest. Returns the paths written, relative to the service.
///
/// # Errors
///
/// Writing fails.
pub fn apply_add(plan: &AddPlan) -> Result<Vec<PathBuf>, GenError> {
    let mut written = Vec::new();
    if plan.already_applied {
        return Ok(written);
    }
    for change in &plan.changes {
        match change.action {
            AddAction::SkipDeleted | AddAction::KeepEdited => continue,
            AddAction::Remove => {
                let path = plan.dir.join(&change.path);
                std::fs::remove_file(&path).map_err(|e| GenError::io(&path, e))?;
                written.push(change.path.clone());
                continue;
            }
            _ => {}
        }
        let rel = change.written_path();
        let path = plan.dir.join(&rel);
        write_atomically(&path, change.contents.as_bytes())?;
        #[cfg(unix)]
        if change.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| GenError::io(&path, e))?;
        }
        written.push(rel);
    }
    write_atomically(&plan.dir.join(MANIFEST_FILE), plan.manifest.to_toml()?.as_bytes())?;
    written.push(PathBuf::from(MANIFEST_FILE));
    Ok(written)
}
