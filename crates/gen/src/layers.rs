//! Features as layers: the registry of what `new --with-FEATURE=PROVIDER` and
//! `add FEATURE --provider PROVIDER` can apply.
//!
//! A layer is one provider of one feature. Applying it sets the feature's option. The registry
//! below says what the layer is (its Cargo features, the secrets its production configuration
//! requires, the variables Compose reads for it); its contents live in
//! `templates/layers/FEATURE/PROVIDER/` (see `LAYERS_DIR` in `render.rs`): fragments for the
//! named slots of the type and common templates (its config sections in every environment file,
//! its Compose services, ConfigMap and Helm values entries, Cargo dependencies, its docs row) and
//! its scaffold files. `new` renders the type with its layers in one pass; `add` renders the
//! service without and with the layer and applies the difference to the files on disk (see
//! [`crate::plan_add`]). Both record the applied layers in the manifest, in the canonical order
//! of [`FEATURE_LAYERS`], which is also the order of their fragments.

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
    /// The features of `microframework-testing` its tests need (dev-dependencies).
    pub testing_features: &'static [&'static str],
    /// The environment variables its production configuration requires, kept in a Secret.
    pub secrets: &'static [SecretVar],
    /// The variables `docker-compose.yml` reads for it from the shell or a `.env` file.
    pub compose_vars: &'static [&'static str],
}

/// An environment variable a layer's production configuration (`configs/config.prod.yaml`)
/// references: the service refuses to start without it. The deployment files list it generically
/// (the Kubernetes Secret and its `kubectl create secret` hint, the Helm `secrets`, the Makefile,
/// `docker run -e`, the docs), so a layer only declares it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretVar {
    /// The variable (`DATABASE_URL`).
    pub name: &'static str,
    /// A comment above its placeholder in the Secret and the Helm values; empty for none.
    pub about: &'static str,
    /// The value to pass in production, as the docs and hints show it: a command or a shape
    /// (`"$(openssl rand -base64 48)"`, `'postgres://USER:PASSWORD@HOST:5432/DB'`), quoted for a shell.
    pub example: &'static str,
    /// The development placeholder of the Secret and the Helm values, containing `change-me` (the
    /// chart refuses to render while it is there); a template that may use `{{ crate_name }}`.
    pub placeholder: &'static str,
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
                testing_features: &["sqlite"],
                secrets: &[],
                compose_vars: &[],
            },
            Provider {
                name: "postgres",
                description: "PostgreSQL",
                cargo_features: &["postgres"],
                testing_features: &["postgres"],
                secrets: &[SecretVar {
                    name: "DATABASE_URL",
                    about: "",
                    example: "'postgres://USER:PASSWORD@HOST:5432/DB'",
                    placeholder: "postgres://{{ crate_name }}:change-me-db-password@postgres:5432/{{ crate_name }}",
                }],
                compose_vars: &["DB_PASSWORD"],
            },
            Provider {
                name: "mysql",
                description: "MySQL or MariaDB",
                cargo_features: &["mysql"],
                testing_features: &["mysql"],
                secrets: &[SecretVar {
                    name: "DATABASE_URL",
                    about: "",
                    example: "'mysql://USER:PASSWORD@HOST:3306/DB'",
                    placeholder: "mysql://{{ crate_name }}:change-me-db-password@mysql:3306/{{ crate_name }}",
                }],
                compose_vars: &["DB_PASSWORD", "DB_ROOT_PASSWORD"],
            },
        ],
        config_section: "database",
    },
    Feature {
        name: "auth",
        description: "authentication: JWT bearer tokens (HS/RS/ES, JWKS) protect the write operations",
        providers: &[Provider {
            name: "jwt",
            description: "JWT bearer tokens",
            // JWKS support, so that `auth.jwt.jwks_url` can replace the secret by configuration.
            cargo_features: &["jwks"],
            testing_features: &[],
            secrets: &[SecretVar {
                name: "JWT_SECRET",
                about: "HS256 signing secret for bearer tokens, at least 32 bytes.",
                example: "\"$(openssl rand -base64 48)\"",
                placeholder: "change-me-jwt-secret-at-least-32-bytes-long",
            }],
            compose_vars: &["JWT_SECRET"],
        }],
        config_section: "auth",
    },
    Feature {
        name: "messaging",
        description: "messaging: publish/subscribe with acks, retries, dead letters and trace propagation; an example consumer in src/events.rs",
        providers: &[
            Provider {
                name: "memory",
                description: "the in-process broker (one process; for development and tests)",
                cargo_features: &["messaging"],
                testing_features: &[],
                secrets: &[],
                compose_vars: &[],
            },
            Provider {
                name: "nats",
                description: "NATS JetStream",
                cargo_features: &["messaging-nats"],
                testing_features: &[],
                secrets: &[],
                compose_vars: &[],
            },
        ],
        config_section: "messaging",
    },
    Feature {
        name: "cache",
        description: "cache: get-or-load with single flight, negative caching and metrics; an outage never fails a request",
        providers: &[
            Provider {
                name: "memory",
                description: "in-process (moka), per replica",
                cargo_features: &["cache"],
                testing_features: &[],
                secrets: &[],
                compose_vars: &[],
            },
            Provider {
                name: "redis",
                description: "Redis, shared by the replicas",
                cargo_features: &["cache-redis"],
                testing_features: &[],
                secrets: &[],
                compose_vars: &[],
            },
        ],
        config_section: "cache",
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
            "database" | "auth" => None,
            other => self::feature(other).ok()?.provider(self.features.get(other)?).map(|p| p.name),
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

    /// The applied layers' providers, in canonical order.
    pub fn providers(&self) -> Vec<(&'static Feature, &'static Provider)> {
        FEATURE_LAYERS
            .iter()
            .filter_map(|f| self.provider_of(f.name).and_then(|p| f.provider(p)).map(|p| (f, p)))
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
            other => {
                out.features.insert(other.to_owned(), provider.to_owned());
            }
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
