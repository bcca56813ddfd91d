//! `wormbox delete-objects`: S3's DeleteObjects, up to 1000 keys or versions
//! of one bucket in one request, from the command line or an `aws s3api
//! delete-objects --delete` JSON file.
//!
//! Invariant: one code (from `--mfa`) is read for the whole request, and only
//! when it removes a version for good; each entry is answered on its own, and
//! the command exits non-zero when any entry was refused.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};
use wormbox_proto::v1;

use crate::commands::Context;

#[derive(Debug, Args)]
pub(crate) struct DeleteObjectsArgs {
    bucket: String,
    /// Keys to delete: a delete marker each (no code needed).
    keys: Vec<String>,
    /// A version to remove for good, as KEY VERSION_ID; repeatable.
    #[arg(long = "version", num_args = 2, value_names = ["KEY", "VERSION_ID"])]
    versions: Vec<String>,
    /// Entries from a JSON file (`-` for stdin) in the shape of
    /// `aws s3api delete-objects --delete`:
    /// {"Objects": [{"Key": "k", "VersionId": "..."}], "Quiet": false}.
    #[arg(long)]
    from_json: Option<PathBuf>,
    /// Print only the entries that were refused (S3's Quiet mode; the
    /// global `--quiet` only turns progress bars off).
    #[arg(long)]
    errors_only: bool,
    /// Purge versions under GOVERNANCE retention (needs the bypass right).
    #[arg(long)]
    bypass_governance: bool,
}

pub(crate) async fn run(cx: &Context, args: DeleteObjectsArgs) -> anyhow::Result<()> {
    let DeleteObjectsArgs { bucket, keys, versions, from_json, errors_only, bypass_governance } = args;
    let mut objects: Vec<v1::ObjectIdentifier> =
        keys.into_iter().map(|key| v1::ObjectIdentifier { key, version_id: String::new() }).collect();
    for pair in versions.chunks(2) {
        if let [key, version_id] = pair {
            objects.push(v1::ObjectIdentifier { key: key.clone(), version_id: version_id.clone() });
        }
    }
    let mut quiet = errors_only;
    if let Some(path) = from_json {
        let (listed, json_quiet) = read_delete_json(&path)?;
        objects.extend(listed);
        quiet |= json_quiet;
    }
    // Markers destroy nothing: a code is read only for permanent deletes.
    let permanent = objects.iter().any(|o| !o.version_id.is_empty());
    let mfa = if permanent { cx.mfa.optional_code()? } else { String::new() };
    let total = objects.len();
    let request = v1::DeleteObjectsRequest { bucket, objects, mfa, bypass_governance, quiet, ..Default::default() };
    let reply = cx.clients.archive().delete_objects(request).await?.into_inner();
    let value = json!({
        "deleted": reply.deleted.iter().map(|d| json!({
            "key": d.key,
            "version_id": d.version_id,
            "delete_marker": d.delete_marker,
            "delete_marker_version_id": d.delete_marker_version_id,
            "ledger_sequence": d.ledger_sequence,
        })).collect::<Vec<_>>(),
        "errors": reply.errors.iter().map(|e| json!({
            "key": e.key,
            "version_id": e.version_id,
            "reason": e.reason,
            "message": e.message,
        })).collect::<Vec<_>>(),
    });
    let mut lines: Vec<String> = reply
        .deleted
        .iter()
        .map(|d| match (d.version_id.is_empty(), d.delete_marker) {
            (true, true) => format!("{}: delete marker {}", d.key, d.delete_marker_version_id),
            (true, false) if d.ledger_sequence == 0 => format!("{}: nothing to delete", d.key),
            (true, false) => format!("{}: removed", d.key),
            (false, _) => format!("{}: removed version {}", d.key, d.version_id),
        })
        .collect();
    for e in &reply.errors {
        let version = if e.version_id.is_empty() { String::new() } else { format!(" version {}", e.version_id) };
        lines.push(format!("{}{version}: refused {}: {}", e.key, e.reason, e.message));
    }
    // Quiet and all deleted: nothing to say, as S3 answers.
    if cx.json || !lines.is_empty() {
        cx.print(value, lines.join("\n"));
    }
    if !reply.errors.is_empty() {
        bail!("{} of {total} deletes were refused", reply.errors.len());
    }
    Ok(())
}

/// The entries and quiet flag of a JSON file in the shape `aws s3api
/// delete-objects --delete` takes.
fn read_delete_json(path: &std::path::Path) -> anyhow::Result<(Vec<v1::ObjectIdentifier>, bool)> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the entries from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?
    };
    let document: Value = serde_json::from_str(&text).context("the entries are not JSON")?;
    let shape = "expected {\"Objects\": [{\"Key\": \"...\", \"VersionId\": \"...\"}], \"Quiet\": false}";
    let listed = document.get("Objects").and_then(Value::as_array).context(shape)?;
    let mut objects = Vec::with_capacity(listed.len());
    for object in listed {
        let key = object.get("Key").and_then(Value::as_str).context(shape)?;
        let version_id = match object.get("VersionId") {
            None | Some(Value::Null) => "",
            Some(v) => v.as_str().context(shape)?,
        };
        objects.push(v1::ObjectIdentifier { key: key.to_owned(), version_id: version_id.to_owned() });
    }
    let quiet = document.get("Quiet").and_then(Value::as_bool).unwrap_or(false);
    Ok((objects, quiet))
}
