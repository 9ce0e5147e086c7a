//! A component that holds service shutdown until WebSocket connections have closed.

use std::time::Duration;

use async_trait::async_trait;

use microframework_core::{AppContext, BoxError, Component};

use crate::hub::Hub;

/// Keeps the service from stopping before its WebSocket connections have closed.
///
/// Upgraded connections are not tracked by the HTTP server's graceful shutdown, so without this
/// the process may exit before the `1001` close frames are written. Components stop after the
/// HTTP server, so this one's `stop` closes the remaining connections and waits for them, up to
/// `timeout` (bounded as well by `shutdown.component_timeout`).
///
/// ```no_run
/// # use microframework::Service;
/// # let hub = microframework_ws::Hub::new();
/// Service::new("chat").component(hub.component());
/// ```
#[derive(Debug)]
pub struct WsComponent {
    hub: Hub,
    timeout: Duration,
}

impl Hub {
    /// A [`WsComponent`] for this hub, waiting up to 5 s at shutdown.
    pub fn component(&self) -> WsComponent {
        WsComponent { hub: self.clone(), timeout: Duration::from_secs(5) }
    }
}

impl WsComponent {
    /// Sets how long `stop` waits for connections to close.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Component for WsComponent {
    fn name(&self) -> &str {
        "websocket"
    }

    async fn start(&mut self, _ctx: &AppContext) -> Result<(), BoxError> {
        Ok(())
    }

    async fn stop(&mut self, _ctx: &AppContext) -> Result<(), BoxError> {
        if self.hub.shutdown(self.timeout).await {
            Ok(())
        } else {
            Err(format!(
                "{} WebSocket connections were still open after {:?}",
                self.hub.connection_count(),
                self.timeout
            )
            .into())
        }
    }
}
