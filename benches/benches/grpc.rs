//! Criterion bench of a gRPC round trip to a whole appliance on loopback:
//! `HeadObject` (authentication, a metadata read, the response) and a 1 KiB
//! `PutObject` (durable before the answer).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wormbox_model::SystemClock;
use wormbox_proto::{BearerAuth, v1};

fn round_trips(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::Builder::new().prefix("wormbox-bench-").tempdir_in("/var/tmp").unwrap();
    let mut config = wormbox_server::WormboxdConfig::default();
    config.listen.addr = "127.0.0.1:0".parse().unwrap();
    config.s3.listen = "127.0.0.1:0".parse().unwrap();
    config.metrics.enabled = false;
    config.storage.data_dir = dir.path().join("data");
    config.evidence.scrub_interval_seconds = 0;
    let (server, mut client) = runtime.block_on(async {
        let server = wormbox_server::start(&config, Arc::new(SystemClock)).await.unwrap();
        let credential = server.new_admin_credential.clone().unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        let mut client =
            v1::archive_client::ArchiveClient::with_interceptor(channel, BearerAuth::new(&credential).unwrap());
        client.create_bucket(v1::CreateBucketRequest { bucket: "bench".into(), ..Default::default() }).await.unwrap();
        (server, client)
    });
    let put = |client: &mut wormbox_proto::ArchiveClient| {
        let header = v1::PutObjectHeader { bucket: "bench".into(), key: "k".into(), ..Default::default() };
        let messages = vec![
            v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) },
            v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(vec![1u8; 1024])) },
            v1::PutObjectRequest {
                part: Some(v1::put_object_request::Part::End(v1::PutObjectEnd { size: 1024, ..Default::default() })),
            },
        ];
        let mut client = client.clone();
        async move { client.put_object(tokio_stream::iter(messages)).await.unwrap() }
    };
    runtime.block_on(put(&mut client));
    let mut group = c.benchmark_group("grpc");
    group.throughput(Throughput::Elements(1));
    group.bench_function("head_object", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let request = v1::HeadObjectRequest { bucket: "bench".into(), key: "k".into(), ..Default::default() };
                client.clone().head_object(request).await.unwrap()
            })
        })
    });
    group.sample_size(20);
    group.bench_function("put_object/1KiB", |b| b.iter(|| runtime.block_on(put(&mut client))));
    group.finish();
    runtime.block_on(server.stop()).unwrap();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
