//! `.microframework.toml`: generator version, options and the hash of every written file as
//! generated. `microframework update` reads it to find the generated files (policy `generated`),
//! to tell which of them the user edited (their hash differs) and to refuse manifests written by a
//! newer generator.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::GenError;
use crate::layers::AppliedLayer;
use crate::options::Options;
use crate::render::{Policy, Project};

/// The manifest's file name, at the service root.
pub const MANIFEST_FILE: &str = ".microframework.toml";

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Who owns the file (`once`: the user, once written; `generated`: the generator, which
    /// `microframework update` rewrites).
    pub policy: Policy,
    /// SHA-256 of the contents as generated, in hex.
    pub sha256: String,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The generator version that wrote the service.
    pub generator_version: String,
    /// The options (flags) used.
    pub options: Options,
    /// The feature layers applied (by `new --with-...` or `add`), in canonical order.
    #[serde(default)]
    pub layers: Vec<AppliedLayer>,
    /// Every generated file by path.
    pub files: BTreeMap<String, FileEntry>,
}

/// SHA-256 of `data` in lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    pub(crate) fn from_project(project: &Project) -> Self {
        let files = project
            .files
            .iter()
            .map(|f| {
                let key = f.path.to_string_lossy().replace('\\', "/");
                (key, FileEntry { policy: f.policy, sha256: sha256_hex(f.contents.as_bytes()) })
            })
            .collect();
        Self {
            generator_version: crate::GENERATOR_VERSION.to_owned(),
            options: project.options.clone(),
            layers: project.options.layers(),
            files,
        }
    }

    /// Serialises to TOML, with a header comment.
    pub fn to_toml(&self) -> Result<String, GenError> {
        let body = toml::to_string_pretty(self).map_err(|e| GenError::Manifest(e.to_string()))?;
        Ok(format!(
            "# Written by `microframework new`, `add` and `update`: the generator version, the options, the\n# applied layers and the SHA-256 of each file as generated. Files with policy `generated` (under\n# src/generated/) are rewritten by `microframework update`; the others are yours. Keep it in\n# version control.\n{body}"
        ))
    }

    /// Reads the manifest of the service at `dir`.
    pub fn read(dir: &Path) -> Result<Self, GenError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| GenError::io(&path, e))?;
        toml::from_str(&text).map_err(|e| GenError::Manifest(format!("{}: {e}", path.display())))
    }

    /// Paths of generated files whose current contents differ from what was generated.
    pub fn modified_files(&self, dir: &Path) -> Vec<String> {
        self.files
            .iter()
            .filter(|(path, entry)| match std::fs::read(dir.join(path)) {
                Ok(bytes) => sha256_hex(&bytes) != entry.sha256,
                Err(_) => true,
            })
            .map(|(p, _)| p.clone())
            .collect()
    }
}
