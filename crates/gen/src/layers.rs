//! Features as layers: the registry of what `new --with-FEATURE=PROVIDER` and
//! `add FEATURE --provider PROVIDER` can apply.
//!
//! A layer is one provider of one feature. Applying it sets the feature's option, and the
//! templates contribute what the layer brings: the Cargo features of the framework it switches
//! on, its config section in every environment file, its services in `docker-compose.yml`, its
//! env and secret entries in the Kubernetes manifests and Helm values, its scaffold files
//! (migrations, `build.rs`), its section in the service's docs and its tests. `new` renders the
//! type with its layers in one pass; `add` renders the service without and with the layer and
//! applies the difference to the files on disk (see [`crate::plan_add`]). Both record the
//! applied layers in the manifest, in the canonical order of [`FEATURE_LAYERS`].

use serde::{Deserialize, Serialize};

use crate::error::GenError;
use crate::options::{AuthKind, DatabaseKind, Options};

/// One provider of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The provider's name (`postgres`, `jwt`).
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The framework's Cargo features it switches on in the service's `Cargo.toml`.
    pub cargo_features: &'static [&'static str],
}

/// An optional feature of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name, as in `--with-NAME` and `add NAME`.
    pub name: &'static str,
    /// What it brings.
    pub description: &'static str,
    /// Its providers; the first is the default of `add` without `--provider`.
    pub providers: &'static [Provider],
    /// The config section it owns in `configs/*.yaml`.
    pub config_section: &'static str,
}

impl Feature {
    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&'static Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The provider `add` applies when none is given.
    pub fn default_provider(&self) -> &'static Provider {
        &self.providers[0]
    }

    fn provider_names(&self) -> String {
        self.providers.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    }
}

/// Every feature, in the canonical order in which layers are applied and recorded.
pub const FEATURE_LAYERS: &[Feature] = &[
    Feature {
        name: "database",
        description: "SQL database: a pool, embedded migrations, a readiness check, repositories on SQL",
        providers: &[
            Provider {
                name: "sqlite",
                description: "SQLite, embedded: a file under data/ (one replica)",
                cargo_features: &["sqlite"],
            },
            Provider { name: "postgres", description: "PostgreSQL", cargo_features: &["postgres"] },
            Provider { name: "mysql", description: "MySQL or MariaDB", cargo_features: &["mysql"] },
        ],
        config_section: "database",
    },
    Feature {
        name: "auth",
        description: "authentication: JWT bearer tokens (HS/RS/ES, JWKS) protect the write operations",
        providers: &[Provider { name: "jwt", description: "JWT bearer tokens", cargo_features: &[] }],
        config_section: "auth",
    },
];

/// The feature called `name`, or an error listing the features there are.
pub fn feature(name: &str) -> Result<&'static Feature, GenError> {
    FEATURE_LAYERS.iter().find(|f| f.name == name).ok_or_else(|| {
        GenError::UnknownFeature(format!(
            "unknown feature `{name}`; the features are: {}",
            FEATURE_LAYERS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// An applied layer, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedLayer {
    /// The feature.
    pub feature: String,
    /// Its provider.
    pub provider: String,
}

impl Options {
    /// The provider of `feature` these options apply, if any.
    pub fn provider_of(&self, feature: &str) -> Option<&'static str> {
        match feature {
            "database" if self.database != DatabaseKind::None => Some(self.database.as_str()),
            "auth" if self.auth != AuthKind::None => Some(self.auth.as_str()),
            _ => None,
        }
    }

    /// The applied layers, in canonical order.
    pub fn layers(&self) -> Vec<AppliedLayer> {
        FEATURE_LAYERS
            .iter()
            .filter_map(|f| {
                self.provider_of(f.name).map(|p| AppliedLayer { feature: f.name.to_owned(), provider: p.to_owned() })
            })
            .collect()
    }

    /// These options with `provider` of `feature` applied.
    ///
    /// # Errors
    ///
    /// An unknown feature or provider.
    pub fn with_layer(&self, feature_name: &str, provider: &str) -> Result<Options, GenError> {
        let f = feature(feature_name)?;
        if f.provider(provider).is_none() {
            return Err(GenError::UnknownFeature(format!(
                "unknown provider `{provider}` for the {} feature; its providers are: {}",
                f.name,
                f.provider_names()
            )));
        }
        let mut out = self.clone();
        match f.name {
            "database" => {
                out.database = DatabaseKind::ALL
                    .into_iter()
                    .find(|d| d.as_str() == provider)
                    .ok_or_else(|| GenError::UnknownFeature(format!("unknown database `{provider}`")))?;
            }
            "auth" => {
                out.auth = AuthKind::ALL
                    .into_iter()
                    .find(|a| a.as_str() == provider)
                    .ok_or_else(|| GenError::UnknownFeature(format!("unknown auth `{provider}`")))?;
            }
            other => return Err(GenError::UnknownFeature(format!("the {other} feature has no option"))),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameworkSource;

    #[test]
    fn every_provider_maps_to_an_option_and_back() {
        let base = Options::new("svc-a", FrameworkSource::Version("0.1".into()));
        for f in FEATURE_LAYERS {
            for p in f.providers {
                let opts = base.with_layer(f.name, p.name).unwrap();
                assert_eq!(opts.provider_of(f.name), Some(p.name));
            }
        }
    }

    #[test]
    fn unknown_names_are_explained() {
        let base = Options::new("svc-a", FrameworkSource::Version("0.1".into()));
        let e = base.with_layer("queue", "redis").unwrap_err().to_string();
        assert!(e.contains("unknown feature `queue`") && e.contains("database, auth"), "{e}");
        let e = base.with_layer("database", "oracle").unwrap_err().to_string();
        assert!(e.contains("`oracle`") && e.contains("sqlite, postgres, mysql"), "{e}");
    }
}
