//! The service's one JWT verifier, shared by every protocol through the [`AppContext`].

use std::sync::Arc;

use microframework_core::{AppContext, BoxError, HealthCheck};
use tokio::sync::OnceCell;

use crate::config::{AuthConfig, JwtConfig};
use crate::verifier::JwtVerifier;

/// The JWT verifier of a service and the `auth.jwt` section it was built from.
///
/// HTTP, gRPC, GraphQL subscriptions and WebSocket upgrades all verify tokens with this one
/// verifier, so a JWKS is fetched and cached once per process. [`SharedJwt::init`] builds it
/// from the `auth` section the first time and keeps it in the context; later calls, and
/// [`SharedJwt::get`], return the same one.
#[derive(Clone, Debug)]
pub struct SharedJwt {
    /// The verifier.
    pub verifier: JwtVerifier,
    /// The `auth.jwt` section as configured (without paths that protocols add to
    /// `public_paths` for themselves).
    pub config: JwtConfig,
}

/// What the context holds: the verifier once built, `None` inside when JWT is off.
#[derive(Clone, Default)]
struct Slot(Arc<OnceCell<Option<SharedJwt>>>);

impl SharedJwt {
    /// The shared verifier of `ctx`, built on the first call from the `auth` section: `None`
    /// when `auth.jwt` is absent or disabled. With a JWKS, a readiness check named `jwks` is
    /// registered that is up once keys are loaded; while they are not, a probe starts at most one
    /// fetch per 30 s (the on-demand refetch interval shared with unknown `kid`s).
    ///
    /// # Errors
    ///
    /// An invalid `auth` section (a [`ConfigError`](microframework_core::ConfigError)), or an
    /// [`AuthError`](crate::AuthError) when the verifier cannot be built (an unreadable key
    /// file). Nothing is kept on error, so a later call tries again.
    pub async fn init(ctx: &AppContext) -> Result<Option<Self>, BoxError> {
        let slot = ctx.get_or_provide_with(Slot::default);
        let shared = slot
            .0
            .get_or_try_init(|| async {
                let auth: AuthConfig = ctx.config().section("auth")?;
                let Some(config) = auth.enabled_jwt().cloned() else {
                    return Ok::<_, BoxError>(None);
                };
                let verifier = JwtVerifier::from_config(&config).await?;
                if config.jwks_url.is_some() {
                    let v = verifier.clone();
                    ctx.health().register(HealthCheck::readiness("jwks", move || {
                        let v = v.clone();
                        async move { v.ensure_keys().await.map_err(|e| e.to_string()) }
                    }));
                }
                Ok(Some(Self { verifier, config }))
            })
            .await?;
        Ok(shared.clone())
    }

    /// The shared verifier of `ctx` when [`SharedJwt::init`] has built one (`None` before that,
    /// or when JWT is off).
    pub fn get(ctx: &AppContext) -> Option<Self> {
        ctx.get::<Slot>().and_then(|slot| slot.0.get().cloned().flatten())
    }
}
