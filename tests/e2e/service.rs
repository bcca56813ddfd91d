//! Health and reflection: what `grpcurl -plaintext 127.0.0.1:7878 list` sees.

use tokio_stream::StreamExt as _;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::v1alpha::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};
use wormbox_test_utils::TestAppliance;

#[tokio::test]
async fn health_reports_serving_for_the_archive() {
    let appliance = TestAppliance::start().await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(appliance.endpoint()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "wormbox.v1.Archive", "wormbox.v1.Admin"] {
        let reply = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn reflection_v1alpha_lists_every_service() {
    let appliance = TestAppliance::start().await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(appliance.endpoint()).unwrap().connect().await.unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["grpc.health.v1.Health", "wormbox.v1.Admin", "wormbox.v1.Archive"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}
