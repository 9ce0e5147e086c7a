//! [`WebSocketPlugin`]: a WebSocket endpoint as a plugin of the service.

use microframework_core::{BoxError, Plugin, PluginContext};
use microframework_http::HttpParts;

use crate::config::WsConfig;
use crate::handler::WsHandler;
use crate::hub::Hub;

/// Serves WebSocket connections at `websocket.path` (default `/ws`) with a handler, sharing a
/// [`Hub`] (rooms, broadcast) with the rest of the service. It owns the `websocket` section.
///
/// The hub is a component, so on shutdown every peer gets a close frame with code 1001 before
/// the process exits. The upgrade checks tokens itself (header or `?access_token=`, with the
/// service's one verifier): with `auth.jwt.required` an anonymous upgrade gets 401, unless
/// `websocket.require_auth: false` or `auth.jwt.public_paths` makes the endpoint public.
/// `Service::websocket(hub, handler)` adds it.
pub struct WebSocketPlugin<H> {
    hub: Hub,
    handler: H,
}

impl<H> std::fmt::Debug for WebSocketPlugin<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketPlugin").finish_non_exhaustive()
    }
}

impl<H: WsHandler> WebSocketPlugin<H> {
    /// The endpoint serving `handler`, with `hub` shared with the rest of the service.
    pub fn new(hub: Hub, handler: H) -> Self {
        Self { hub, handler }
    }
}

impl<H: WsHandler> Plugin for WebSocketPlugin<H> {
    type Config = WsConfig;

    fn name(&self) -> &str {
        "websocket"
    }

    fn section(&self) -> Option<&str> {
        Some("websocket")
    }

    fn build(self, config: WsConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        cx.component(self.hub.component());
        let Self { hub, handler } = self;
        // The HTTP layer lets anonymous upgrades through so that browsers, which cannot set a
        // header on a WebSocket, reach the endpoint with `?access_token=`; the endpoint decides.
        HttpParts::of(cx).public_path(config.path).router(move |ctx| crate::endpoint::router(hub, handler, ctx, None));
        Ok(())
    }
}
