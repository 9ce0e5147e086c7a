//! Server reflection lists and describes the registered services.

use prost::Message;
use tonic::Code;

use microframework_grpc::tonic::transport::Channel;

use crate::{TestServer, echo_builder};

mod v1 {
    pub(crate) use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    pub(crate) use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    pub(crate) use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    pub(crate) use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
}

async fn ask(channel: Channel, request: v1::MessageRequest) -> Result<v1::MessageResponse, tonic::Status> {
    let mut client = v1::ServerReflectionClient::new(channel);
    let req = v1::ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut stream = client.server_reflection_info(futures_util::stream::iter([req])).await?.into_inner();
    let res: v1::ServerReflectionResponse = stream.message().await?.expect("one response");
    Ok(res.message_response.expect("a response message"))
}

#[tokio::test]
async fn lists_and_describes_services() {
    let server = TestServer::start("grpc:\n  port: 0\n", echo_builder()).await;
    let channel = server.channel().await;

    let v1::MessageResponse::ListServicesResponse(list) =
        ask(channel.clone(), v1::MessageRequest::ListServices(String::new())).await.unwrap()
    else {
        panic!("not a list of services");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "echo.v1.Echo",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"
        ]
    );

    let v1::MessageResponse::FileDescriptorResponse(files) =
        ask(channel.clone(), v1::MessageRequest::FileContainingSymbol("echo.v1.Echo".into())).await.unwrap()
    else {
        panic!("not a file descriptor response");
    };
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice()).unwrap();
    assert_eq!(file.name(), "echo/v1/echo.proto");
    let methods: Vec<_> = file.service[0].method.iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(methods, ["Say", "Count", "Sum", "Chat"]);

    // The health service is described too.
    let res = ask(channel.clone(), v1::MessageRequest::FileContainingSymbol("grpc.health.v1.Health".into())).await;
    assert!(matches!(res.unwrap(), v1::MessageResponse::FileDescriptorResponse(_)));

    // v1alpha, for older tools.
    use tonic_reflection::pb::v1alpha;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(futures_util::stream::iter([req])).await.unwrap().into_inner();
    let res = stream.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) = res.message_response
    else {
        panic!("not a list of services");
    };
    assert!(list.service.iter().any(|s| s.name == "echo.v1.Echo"));
    server.stop().await;
}

#[tokio::test]
async fn reflection_can_be_switched_off() {
    let server = TestServer::start("grpc:\n  port: 0\n  reflection: false\n", echo_builder()).await;
    let err = ask(server.channel().await, v1::MessageRequest::ListServices(String::new())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    server.stop().await;
}
