//! The real binary with `[log] format = "json"`: every line is a JSON
//! object, a gRPC call's lines carry its request id, and the call's response
//! metadata carries the same id (`x-request-id`); ids differ per call; no
//! line holds the credential's secret.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wormbox_proto::{BearerAuth, v1};

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_carry_the_request_id_the_call_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wormboxd.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n[s3]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
             [storage]\ndata_dir = {data:?}\nwrite_buffer_mib = 4\nblock_cache_mib = 8\n\
             [log]\nfilter = \"info\"\nformat = \"json\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormboxd"))
        .arg("--config")
        .arg(&config)
        .env_remove("WORMBOX_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wormboxd starts");
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).for_each(|l| drop(lines_tx.send(l)))
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = None;
    let addr = loop {
        let line = stdout.next().expect("wormboxd prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("first start: admin credential ") {
            admin = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(addr) = line.strip_prefix("wormboxd listening on ") {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || stdout.for_each(drop));
    let admin = admin.expect("the first start prints the admin credential");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut as_admin =
        v1::admin_client::AdminClient::with_interceptor(channel.clone(), BearerAuth::new(&admin).unwrap());
    let request =
        v1::CreatePrincipalRequest { name: "ingest".into(), role: v1::Role::Writer as i32, ..Default::default() };
    let created = as_admin.create_principal(request).await.unwrap();
    let first = created.metadata().get("x-request-id").expect("an id").to_str().unwrap().to_owned();
    let created = created.into_inner();
    let writer = format!("{}:{}", created.principal.unwrap().access_key_id, created.secret);
    // A writer asking for the principals is refused, and the refusal logged.
    let mut as_writer = v1::admin_client::AdminClient::with_interceptor(channel, BearerAuth::new(&writer).unwrap());
    let refused = as_writer.list_principals(v1::ListPrincipalsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let id = refused.metadata().get("x-request-id").expect("an id on a refusal too").to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_ne!(id, first, "each call has its own id");

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let line = loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line =
            lines_rx.recv_timeout(wait).unwrap_or_else(|_| panic!("no log line with request id {id}:\n{seen:#?}"));
        let parsed: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(!line.contains(&writer[writer.find(':').unwrap() + 1..]), "a secret in the log: {line}");
        if parsed["span"]["request_id"] == id.as_str() {
            break parsed;
        }
        seen.push(line);
    };
    assert_eq!(line["span"]["method"], "/wormbox.v1.Admin/ListPrincipals", "{line}");
    let _ = child.kill();
    let _ = child.wait();
}
