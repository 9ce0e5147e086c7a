//! The gRPC plugin on the plugin seam: another plugin adds its service through the gRPC slot,
//! and the plugin opens its own listener, built the way the service builder builds it.

use std::time::Duration;

use microframework_core::plugin::Slots;
use microframework_core::{BoxError, ComponentSet, NoConfig, Plugin, PluginContext, PluginSet};
use microframework_grpc::{GrpcBuilder, GrpcPlugin, GrpcServices};
use microframework_http::{AppBuilder, HttpParts};

use crate::pb::echo_server::EchoServer;
use crate::pb::{self, echo_client::EchoClient};
use crate::{Echo, context, say};

/// A plugin that brings the echo service to whichever gRPC server the service has.
struct EchoPlugin;

impl Plugin for EchoPlugin {
    type Config = NoConfig;

    fn name(&self) -> &str {
        "echo"
    }

    fn section(&self) -> Option<&str> {
        None
    }

    fn dependencies(&self) -> Vec<String> {
        vec!["grpc".to_owned()]
    }

    fn build(self, _: NoConfig, cx: &mut PluginContext<'_>) -> Result<(), BoxError> {
        GrpcServices::of(cx)
            .add(|builder, _ctx| Ok(builder.add_service(EchoServer::new(Echo)).file_descriptor_set(pb::DESCRIPTOR)));
        Ok(())
    }
}

#[tokio::test]
async fn another_plugin_adds_its_service_to_the_grpc_listener() {
    let ctx = context("grpc:\n  host: 127.0.0.1\n  port: 0\n");
    let mut plugins = PluginSet::new();
    // Added before the gRPC plugin on purpose: the slot is shared whatever the order.
    plugins.add(EchoPlugin);
    plugins.add(GrpcPlugin::new(|_: &_| Ok(GrpcBuilder::new())));
    plugins.validate(ctx.config()).unwrap();
    let mut built = plugins.build(&ctx, ComponentSet::new(), Slots::default()).unwrap();
    let parts = built.slots.take::<HttpParts>();
    let served = parts.assemble(AppBuilder::new("svc", "1.0.0"), &ctx, None).await.unwrap();
    let mut listeners = served.serving.listeners;
    assert_eq!(listeners.len(), 1, "gRPC has a listener of its own");
    let grpc = listeners.remove(0);
    assert_eq!(grpc.name, "grpc");
    let addr = grpc.listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(microframework_http::server::serve_with(
        grpc.listener,
        grpc.router,
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(5),
        grpc.options,
    ));

    let channel = microframework_grpc::connect(format!("http://{addr}")).await.unwrap();
    let reply = EchoClient::new(channel).say(say("hello")).await.unwrap();
    assert_eq!(reply.into_inner().message, "hello");

    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_service_without_grpc_refuses_a_plugin_that_needs_it() {
    let ctx = context("");
    let mut plugins = PluginSet::new();
    plugins.add(EchoPlugin);
    let err = plugins.build(&ctx, ComponentSet::new(), Slots::default()).unwrap_err();
    assert!(err.to_string().contains("plugin `echo` depends on plugin `grpc`"), "{err}");
}
