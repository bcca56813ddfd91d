//! `wormbox put`, `get`, `head`, `rm`, `versions` and `ls`: one object
//! version at a time, and the listings, with the text and JSON shapes of a
//! version.
//!
//! Invariant: `put` sends its end message (size and SHA-256 of what was read)
//! only after the whole input was read, so a read error stores nothing; `rm`
//! reads a code only to remove a version for good (a marker destroys nothing).

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use wormbox_proto::v1;

use crate::commands::{Context, VersionArgs};
use crate::output::{hold_json, retention_json};
use crate::parse::parse_retention;

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    bucket: String,
    key: String,
    /// File to upload; `-` or absent for stdin.
    file: Option<PathBuf>,
    #[arg(long, default_value = "application/octet-stream")]
    content_type: String,
    /// User metadata `NAME=VALUE`, repeatable.
    #[arg(long = "meta")]
    metadata: Vec<String>,
    /// Expected SHA-256 (hex); the appliance stores nothing on mismatch.
    #[arg(long)]
    sha256: Option<String>,
    /// Retention MODE:UNTIL, e.g. compliance:2033-01-01 (Object Lock buckets).
    #[arg(long)]
    retention: Option<String>,
    /// Place this legal hold (case id) at once (admin).
    #[arg(long)]
    legal_hold: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    version: VersionArgs,
    /// Output file; stdout when absent.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct HeadArgs {
    #[command(flatten)]
    version: VersionArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    #[command(flatten)]
    version: VersionArgs,
    /// Purge a version under GOVERNANCE retention (needs the bypass right).
    #[arg(long)]
    bypass_governance: bool,
}

/// What both listings take: the bucket, and the prefix and delimiter that
/// select and group its keys.
#[derive(Debug, Args)]
struct ListingArgs {
    bucket: String,
    #[arg(long, default_value = "")]
    prefix: String,
    #[arg(long, default_value = "")]
    delimiter: String,
}

#[derive(Debug, Args)]
pub(crate) struct VersionsArgs {
    #[command(flatten)]
    listing: ListingArgs,
    #[arg(long, default_value = "")]
    key_marker: String,
    #[arg(long, default_value = "")]
    version_id_marker: String,
    #[arg(long, default_value_t = 1000)]
    max_keys: u32,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    listing: ListingArgs,
    #[arg(long, default_value = "")]
    start_after: String,
    #[arg(long, default_value_t = 1000)]
    max_keys: u32,
}

pub(crate) async fn put(cx: &Context, args: PutArgs) -> anyhow::Result<()> {
    let PutArgs { bucket, key, file, content_type, metadata, sha256, retention, legal_hold } = args;
    let retention = retention.as_deref().map(parse_retention).transpose()?;
    let mut user_metadata = std::collections::HashMap::new();
    for entry in metadata {
        let (name, value) = entry.split_once('=').context("--meta takes NAME=VALUE")?;
        user_metadata.insert(name.to_owned(), value.to_owned());
    }
    let expected_sha256 = match sha256 {
        Some(hex_digest) => hex::decode(hex_digest.trim()).context("--sha256 must be hex")?,
        None => Vec::new(),
    };
    let header = v1::PutObjectHeader {
        bucket,
        key: key.clone(),
        content_type,
        user_metadata,
        expected_sha256,
        retention,
        legal_hold: legal_hold.unwrap_or_default(),
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let source = file.filter(|f| f.as_os_str() != "-");
    // A regular file's size is known; a pipe's is not.
    let total = source.as_ref().and_then(|p| std::fs::metadata(p).ok()).filter(|m| m.is_file()).map(|m| m.len());
    let progress = crate::output::Progress::bytes("storing", total);
    let reading = progress.clone();
    let reader = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut input: Box<dyn Read> = match &source {
            Some(path) => Box::new(std::fs::File::open(path).with_context(|| format!("opening `{}`", path.display()))?),
            None => Box::new(std::io::stdin()),
        };
        let header = v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Header(header)) };
        if tx.blocking_send(header).is_err() {
            return Ok(());
        }
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        loop {
            // A read error returns before the end message: the
            // appliance then stores nothing of what was sent.
            let n = input.read(&mut buffer).context("reading input")?;
            if n == 0 {
                break;
            }
            size += n as u64;
            reading.reach(size);
            hasher.update(&buffer[..n]);
            let data = v1::PutObjectRequest { part: Some(v1::put_object_request::Part::Data(buffer[..n].to_vec())) };
            if tx.blocking_send(data).is_err() {
                return Ok(());
            }
        }
        let end = v1::PutObjectEnd { size, sha256: hasher.finish().as_ref().to_vec() };
        let _ = tx.blocking_send(v1::PutObjectRequest { part: Some(v1::put_object_request::Part::End(end)) });
        Ok(())
    });
    let res = cx.clients.archive().put_object(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    reader.join().map_err(|_| anyhow::anyhow!("input reader panicked"))??;
    let reply = res?.into_inner();
    progress.finish();
    let value = json!({
        "key": key,
        "version_id": reply.version_id,
        "sha256": hex::encode(&reply.sha256),
        "size": reply.size,
        "ledger_sequence": reply.ledger_sequence,
    });
    let text = format!("{}  {}  sha256={}", reply.version_id, reply.size, hex::encode(&reply.sha256));
    cx.print(value, text);
    Ok(())
}

pub(crate) async fn get(cx: &Context, args: GetArgs) -> anyhow::Result<()> {
    let GetArgs { version: VersionArgs { bucket, key, version_id }, output } = args;
    let request = v1::GetObjectRequest { bucket, key, version_id: version_id.unwrap_or_default() };
    let mut stream = cx.clients.archive().get_object(request).await?.into_inner();
    let mut sink: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating `{}`", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    // The bytes themselves on the terminal: no bar over them.
    let progress = match output.is_none() && std::io::stdout().is_terminal() {
        true => crate::output::Progress::off(),
        false => crate::output::Progress::bytes("fetching", None),
    };
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(v1::get_object_response::Part::Metadata(version)) => progress.set_total(version.size),
            Some(v1::get_object_response::Part::Data(data)) => {
                sink.write_all(&data).context("writing output")?;
                progress.step(data.len() as u64);
            }
            None => {}
        }
    }
    sink.flush().context("writing output")?;
    progress.finish();
    Ok(())
}

pub(crate) async fn head(cx: &Context, args: HeadArgs) -> anyhow::Result<()> {
    let HeadArgs { version: VersionArgs { bucket, key, version_id } } = args;
    let request = v1::HeadObjectRequest { bucket, key, version_id: version_id.unwrap_or_default() };
    let version = cx.clients.archive().head_object(request).await?.into_inner().version.unwrap_or_default();
    let text = format!("{}\nsha256={}", version_line(&version), hex::encode(&version.sha256));
    cx.print(version_json(&version), text);
    Ok(())
}

pub(crate) async fn rm(cx: &Context, args: RmArgs) -> anyhow::Result<()> {
    let RmArgs { version: VersionArgs { bucket, key, version_id }, bypass_governance } = args;
    // A marker destroys nothing: no code is read or spent for it.
    let mfa = if version_id.is_some() { cx.mfa.optional_code()? } else { String::new() };
    let request =
        v1::DeleteObjectRequest { bucket, key, version_id: version_id.unwrap_or_default(), mfa, bypass_governance };
    let reply = cx.clients.archive().delete_object(request).await?.into_inner();
    let value = json!({
        "version_id": reply.version_id,
        "delete_marker": reply.delete_marker,
        "ledger_sequence": reply.ledger_sequence,
    });
    let text = match (reply.delete_marker, reply.version_id.is_empty()) {
        (_, true) => "nothing to delete".to_owned(),
        (true, false) => format!("delete marker {}", reply.version_id),
        (false, false) => format!("removed version {}", reply.version_id),
    };
    cx.print(value, text);
    Ok(())
}

pub(crate) async fn versions(cx: &Context, args: VersionsArgs) -> anyhow::Result<()> {
    let VersionsArgs { listing: ListingArgs { bucket, prefix, delimiter }, key_marker, version_id_marker, max_keys } =
        args;
    let request = v1::ListObjectVersionsRequest { bucket, prefix, delimiter, key_marker, version_id_marker, max_keys };
    let page = cx.clients.archive().list_object_versions(request).await?.into_inner();
    let mut all: Vec<&v1::ObjectVersion> = page.versions.iter().chain(&page.delete_markers).collect();
    all.sort_by(|a, b| a.key.cmp(&b.key).then(b.version_id.cmp(&a.version_id)));
    let mut lines: Vec<String> = page.common_prefixes.iter().map(|p| format!("PREFIX {p}")).collect();
    lines.extend(all.iter().map(|v| version_line(v)));
    if page.is_truncated {
        lines.push(format!(
            "(more: --key-marker {:?} --version-id-marker {})",
            page.next_key_marker, page.next_version_id_marker
        ));
    }
    let value = json!({
        "versions": page.versions.iter().map(version_json).collect::<Vec<_>>(),
        "delete_markers": page.delete_markers.iter().map(version_json).collect::<Vec<_>>(),
        "common_prefixes": page.common_prefixes,
        "is_truncated": page.is_truncated,
        "next_key_marker": page.next_key_marker,
        "next_version_id_marker": page.next_version_id_marker,
    });
    cx.print(value, lines.join("\n"));
    Ok(())
}

pub(crate) async fn ls(cx: &Context, args: LsArgs) -> anyhow::Result<()> {
    let LsArgs { listing: ListingArgs { bucket, prefix, delimiter }, start_after, max_keys } = args;
    let request = v1::ListObjectsRequest { bucket, prefix, delimiter, start_after, max_keys, ..Default::default() };
    let page = cx.clients.archive().list_objects(request).await?.into_inner();
    let mut lines: Vec<String> = page.common_prefixes.iter().map(|p| format!("PREFIX {p}")).collect();
    lines.extend(page.objects.iter().map(version_line));
    if page.is_truncated {
        lines.push(format!("(more: --start-after {:?})", page.next_continuation_token));
    }
    let value = json!({
        "objects": page.objects.iter().map(version_json).collect::<Vec<_>>(),
        "common_prefixes": page.common_prefixes,
        "is_truncated": page.is_truncated,
        "next_continuation_token": page.next_continuation_token,
    });
    cx.print(value, lines.join("\n"));
    Ok(())
}

fn version_json(version: &v1::ObjectVersion) -> Value {
    json!({
        "key": version.key,
        "version_id": version.version_id,
        "is_latest": version.is_latest,
        "is_delete_marker": version.is_delete_marker,
        "size": version.size,
        "sha256": hex::encode(&version.sha256),
        "content_type": version.content_type,
        "user_metadata": version.user_metadata,
        "created_at": wormbox_model::Timestamp(version.created_at_unix_micros).to_rfc3339(),
        "creator": version.creator,
        "retention": version.retention.as_ref().map(retention_json),
        "legal_holds": version.legal_holds.iter().map(hold_json).collect::<Vec<_>>(),
    })
}

fn version_line(version: &v1::ObjectVersion) -> String {
    format!(
        "{}  {}  {:>12}  {}{}  {}",
        wormbox_model::Timestamp(version.created_at_unix_micros).to_rfc3339(),
        version.version_id,
        version.size,
        if version.is_latest { "latest " } else { "       " },
        if version.is_delete_marker { "marker" } else { "      " },
        version.key.escape_debug()
    )
}
