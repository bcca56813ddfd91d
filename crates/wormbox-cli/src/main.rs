//! `wormbox`: the operator CLI. It speaks gRPC, so it has no way around the
//! archive's rules. The one exception, `verify --data-dir`, opens a stopped
//! appliance's files read-only to check them; `verify-export` reads an export.
//!
//! This file parses the command line, connects and hands each command to its
//! family in `commands/`; the `--help` text of each top-level command is its
//! variant's doc comment below.
//!
//! Invariant: the process exits 0 only when the command succeeded; any failure
//! prints one `error:` line on stderr (a gRPC error with its code and reason)
//! and exits 1. The offline commands run without a credential or a connection.

mod client;
mod commands;
mod output;
mod parse;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tonic_types::StatusExt;

use crate::client::{Mfa, Target};
use crate::commands::{
    Context, admin, audit, bucket, checkpoint, clock, delete_objects, export, hold, mfa, object, principal, proof,
    replica, report, retention, status, verify, witness,
};

/// Operate a Wormbox archive over gRPC.
#[derive(Debug, Parser)]
#[command(name = "wormbox", version)]
struct Cli {
    /// The appliance's address.
    #[arg(long, env = "WORMBOX_ENDPOINT", default_value = "http://127.0.0.1:7878", global = true)]
    endpoint: String,
    /// Credential `AKID:SECRET`.
    #[arg(long, env = "WORMBOX_CREDENTIAL", hide_env_values = true, global = true)]
    credential: Option<String>,
    /// File holding the credential (e.g. wormbox-data/admin.credential).
    #[arg(long, global = true)]
    credential_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an https endpoint.
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars (they are drawn only on a terminal anyway).
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Where MFA codes come from: serial:PATH[#SERIAL] (a token on a serial
    /// line), prompt[:SERIAL] (ask on the terminal) or literal:SERIAL CODE [CODE2].
    #[arg(long, env = "WORMBOX_MFA", hide_env_values = true, global = true)]
    mfa: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Buckets.
    #[command(subcommand)]
    Bucket(bucket::BucketCommand),
    /// Store a file (or stdin with `-`) as a new version.
    Put(object::PutArgs),
    /// Fetch a version's bytes to a file or stdout.
    Get(object::GetArgs),
    /// Show a version's metadata.
    Head(object::HeadArgs),
    /// Write a delete marker, or with --version-id remove that version for
    /// good (with --mfa when the bucket has MFA Delete on).
    Rm(object::RmArgs),
    /// Delete up to 1000 objects or versions of one bucket in one request
    /// (S3's DeleteObjects), with one code (--mfa) for all of its permanent
    /// deletes. Each entry is answered on its own; exits non-zero if any was
    /// refused.
    DeleteObjects(delete_objects::DeleteObjectsArgs),
    /// Object Lock retention of a version.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Legal holds on a version (admins and auditors).
    #[command(subcommand)]
    Hold(hold::HoldCommand),
    /// List versions and delete markers.
    Versions(object::VersionsArgs),
    /// List objects (latest versions that are not delete markers).
    Ls(object::LsArgs),
    /// Principals (admin only).
    #[command(subcommand)]
    Principal(principal::PrincipalCommand),
    /// MFA devices.
    #[command(subcommand)]
    Mfa(mfa::MfaCommand),
    /// The compliance clock.
    #[command(subcommand)]
    Clock(clock::ClockCommand),
    /// Appliance keys.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Replication to the replica (admins and auditors).
    #[command(subcommand)]
    Replica(replica::ReplicaCommand),
    /// A signed checkpoint of the ledger (the current head, or a stored one).
    Checkpoint(checkpoint::CheckpointArgs),
    /// The appliance on one screen: build, uptime, disk and its reserve,
    /// ledger and last checkpoint, clock, scrub, replication lag, MFA
    /// lockouts (admins and auditors).
    Status,
    /// Recompute the ledger chain, check every checkpoint and re-hash every
    /// version; exits non-zero on any divergence. With --data-dir, offline on
    /// a stopped appliance's data directory (or a copy). With --replica RULE,
    /// checks that rule's replica against the archive instead and names the
    /// first divergence.
    Verify(verify::VerifyArgs),
    /// The audit trail: ledger entries, filtered (admins and auditors).
    Audit(audit::AuditArgs),
    /// Reports for compliance officers.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Export a bucket's versions, manifest, audit trail, checkpoint and
    /// public key to a directory a regulator can verify offline. Resumes an
    /// interrupted export into the same directory; refuses any other non-empty one.
    Export(export::ExportArgs),
    /// Verify an export directory without the appliance.
    VerifyExport(export::VerifyExportArgs),
    /// Write the Merkle proof that the ledger entry which wrote a version (or
    /// the entry --ledger-sequence names) is in the tree of a signed
    /// checkpoint (admins and auditors).
    Prove(proof::ProveArgs),
    /// Check a proof file offline: the entry's leaf, its path to the signed
    /// root, the signature under your copy of the public key, and with
    /// --bytes the version's bytes against the entry's SHA-256.
    VerifyProof(proof::VerifyProofArgs),
    /// Check that the appliance's tree of a later checkpoint (or of its head)
    /// extends the tree of a checkpoint you kept: nothing before it was
    /// rewritten (admins and auditors).
    VerifyConsistency(proof::VerifyConsistencyArgs),
    /// A witness of appliances' ledgers (C2SP tlog-witness), to run on
    /// another machine: it cosigns each checkpoint only if it extends the
    /// last one it cosigned (no appliance connection needed).
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            match err.downcast_ref::<tonic::Status>() {
                Some(status) => {
                    let reason = status.get_details_error_info().map(|i| i.reason).unwrap_or_default();
                    eprintln!("error: {:?} {reason}: {}", status.code(), status.message());
                }
                None => eprintln!("error: {err:#}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    output::set_quiet(cli.quiet);
    // Offline commands need no appliance and no credential.
    if let Command::Verify(args) = &cli.command
        && let Some(dir) = &args.data_dir
    {
        return verify::offline(dir, args, cli.json);
    }
    if let Command::VerifyExport(args) = &cli.command {
        return export::verify(args, cli.json);
    }
    if let Command::VerifyProof(args) = &cli.command {
        return proof::verify_proof(args, cli.json);
    }
    if let Command::Witness(command) = cli.command {
        return witness::run(command, cli.json).await;
    }
    let target = Target {
        endpoint: &cli.endpoint,
        credential: cli.credential.as_deref(),
        credential_file: cli.credential_file.as_deref(),
        ca_cert: cli.ca_cert.as_deref(),
    };
    let clients = client::connect(target).await?;
    let cx = Context { clients, mfa: Mfa(cli.mfa), json: cli.json };
    match cli.command {
        Command::Bucket(command) => bucket::run(&cx, command).await,
        Command::Put(args) => object::put(&cx, args).await,
        Command::Get(args) => object::get(&cx, args).await,
        Command::Head(args) => object::head(&cx, args).await,
        Command::Rm(args) => object::rm(&cx, args).await,
        Command::DeleteObjects(args) => delete_objects::run(&cx, args).await,
        Command::Retention(command) => retention::run(&cx, command).await,
        Command::Hold(command) => hold::run(&cx, command).await,
        Command::Versions(args) => object::versions(&cx, args).await,
        Command::Ls(args) => object::ls(&cx, args).await,
        Command::Principal(command) => principal::run(&cx, command).await,
        Command::Mfa(command) => mfa::run(&cx, command).await,
        Command::Clock(command) => clock::run(&cx, command).await,
        Command::Admin(command) => admin::run(&cx, command).await,
        Command::Replica(command) => replica::run(&cx, command).await,
        Command::Checkpoint(args) => checkpoint::run(&cx, args).await,
        Command::Status => status::run(&cx).await,
        Command::Verify(args) => verify::online(&cx, args).await,
        Command::Audit(args) => audit::run(&cx, args).await,
        Command::Report(command) => report::run(&cx, command).await,
        Command::Export(args) => export::run(&cx, args).await,
        Command::VerifyExport(args) => export::verify(&args, cx.json),
        Command::Prove(args) => proof::prove(&cx, args).await,
        Command::VerifyProof(args) => proof::verify_proof(&args, cx.json),
        Command::VerifyConsistency(args) => proof::verify_consistency(&cx, args).await,
        Command::Witness(command) => witness::run(command, cx.json).await,
    }
}
