//! `wormboxd`: process entry point. Parses flags, loads the config, installs
//! tracing and calls `wormbox_server::run`, `init::init` or `backup::restore`;
//! nothing testable lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wormbox_model::SystemClock;
use wormbox_server::WormboxdConfig;
use wormbox_server::backup::RestoreOptions;
use wormbox_server::init::InitOptions;
use wormbox_server::replica_restore::{RESTORED_CREDENTIALS_FILE, ReplicaRestoreOptions, restore_from_replica};

/// jemalloc for Rust's allocations (gRPC buffers, records, the writer's
/// groups) rather than glibc's per-thread arenas; RocksDB's C++ allocations
/// stay on glibc malloc, set up by `tune_system_allocator` in `main`
/// (benches/results/2026-11-27-pipelined.md, 2026-11-27-segments.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The Wormbox WORM archive daemon. Without a subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "wormboxd", version)]
struct Args {
    /// TOML config file (see deploy/config/wormboxd.toml); defaults apply without one.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory, overriding the config.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Listen address, overriding the config.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// S3 endpoint listen address, overriding the config (`[s3] listen`).
    #[arg(long)]
    s3_listen: Option<SocketAddr>,
    /// Metrics listen address, overriding the config (`[metrics] listen`).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Refuse to start unless `wormboxd init` (or a restore) made the data
    /// directory, instead of creating a new archive on first start.
    #[arg(long)]
    require_initialised: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// First run: creates the data directory, keys, TLS certificates and the
    /// first admin; refuses an initialised directory.
    Init {
        /// A DNS name or IP address clients use for the appliance (repeat);
        /// localhost and loopback are always included.
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
        /// Use the site's own certificate chain (PEM) instead of generating a CA.
        #[arg(long, requires = "tls_key", conflicts_with = "tls_names")]
        tls_cert: Option<PathBuf>,
        /// The key of --tls-cert (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Restores a backup (`wormbox admin backup`), or with --from-replica the
    /// archive its [[replication]] rules' replicas hold, into a new data
    /// directory, after verifying it; the appliance must be stopped.
    Restore {
        /// The backup directory.
        #[arg(long, required_unless_present = "from_replica", conflicts_with = "from_replica")]
        from: Option<PathBuf>,
        /// Rebuild from the replicas of the configuration's [[replication]]
        /// rules (signed ledger ranges, checkpoints and every version's bytes).
        #[arg(long)]
        from_replica: bool,
        /// Where the appliance's mfa-master.key and checkpoint-signing.key are
        /// kept (and, for --from-replica, its replica-RULE.credential files).
        #[arg(long)]
        keys: PathBuf,
        /// A checkpoint the appliance published (repeat); the backup must reach the newest.
        #[arg(long)]
        published: Vec<PathBuf>,
        /// Restore although no published checkpoint is at hand.
        #[arg(long, conflicts_with = "published")]
        no_published_checkpoint: bool,
    },
    /// Seals a replication rule's S3 credential (`ACCESS_KEY:SECRET`, one
    /// line on standard input) under the data directory's master key, as
    /// `replica-RULE.credential`; replaces the rule's earlier one. Restart
    /// wormboxd to use it.
    ReplicaCredential {
        /// The rule's name, as in its `[[replication]]` section.
        #[arg(long)]
        rule: String,
    },
    /// Rebuilds the archive's index from its log alone (when the index is
    /// damaged or lost and the log is whole); the appliance must be stopped.
    /// The new index is verified (with checkpoint-signing.pub, and against
    /// every checkpoint named with --published, so a log cut short is
    /// refused) before it replaces the old one, which is kept as
    /// db.replaced-SECONDS.
    RebuildIndex {
        /// A checkpoint the appliance published (repeat): an auditor's copy
        /// from `wormbox checkpoint --out`, or a backup's backup.json.
        #[arg(long)]
        published: Vec<PathBuf>,
        /// Rebuild although no published checkpoint is at hand.
        #[arg(long, conflicts_with = "published")]
        no_published_checkpoint: bool,
    },
}

fn main() -> anyhow::Result<()> {
    wormbox_store_rocksdb::tune_system_allocator();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => WormboxdConfig::load(path)?,
        None => WormboxdConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen.addr = listen;
    }
    if let Some(listen) = args.s3_listen {
        config.s3.listen = listen;
    }
    if let Some(listen) = args.metrics_listen {
        config.metrics.listen = listen;
    }
    if let Some(data_dir) = &args.data_dir {
        config.storage.data_dir = data_dir.clone();
    }
    wormbox_server::telemetry::init(&config.log.filter, config.log.format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match args.command {
        None => {
            if args.require_initialised && !wormbox_server::init::is_initialised(&config.storage.data_dir) {
                anyhow::bail!(
                    "{} holds no archive: run `wormboxd init` (or `wormboxd restore`) first",
                    config.storage.data_dir.display()
                );
            }
            tracing::info!(
                listen = %config.listen.addr,
                data_dir = %config.storage.data_dir.display(),
                tls = config.tls.is_some(),
                max_object_bytes = config.limits.max_object_bytes,
                "effective configuration"
            );
            runtime.block_on(async {
                wormbox_server::run(&config, Arc::new(SystemClock), shutdown_signal()).await.context("wormboxd failed")
            })
        }
        Some(Command::Init { tls_names, tls_cert, tls_key }) => {
            let options = InitOptions { tls_names, tls_import: tls_cert.zip(tls_key) };
            let done = runtime
                .block_on(wormbox_server::init::init(&config, Arc::new(SystemClock), &options))
                .context("wormboxd init failed")?;
            let dir = config.storage.data_dir.display();
            println!("initialised {dir}");
            // Shown once, here, as on an uninitialised first start; never logged.
            println!("admin credential: {} (also in {dir}/admin.credential, mode 0600)", done.admin_credential);
            println!("checkpoint public key: {}", done.public_key_hex);
            if let Some(tls) = &done.tls {
                println!("TLS certificate {} and key {} (0600)", tls.cert.display(), tls.key.display());
                if let Some(ca) = &tls.ca {
                    println!(
                        "TLS CA for clients: {} (wormbox --ca-cert); names: {}",
                        ca.display(),
                        tls.names.join(", ")
                    );
                }
            }
            println!(
                "keep a copy of {dir}/mfa-master.key and {dir}/checkpoint-signing.key offline: \
                 backups hold neither, and a restore needs both"
            );
            Ok(())
        }
        Some(Command::RebuildIndex { published, no_published_checkpoint }) => {
            let options = wormbox_server::rocks_options(&config);
            let now = wormbox_model::Clock::now(&wormbox_model::SystemClock);
            let secs = u64::try_from(now.0 / 1_000_000).unwrap_or(0);
            let published = wormbox_server::index::Published { paths: published, none_kept: no_published_checkpoint };
            let rebuilt = wormbox_server::index::rebuild_index(&config.storage.data_dir, &options, secs, &published)?;
            println!(
                "rebuilt the index from {} log frames; it verifies ({}); the replaced index is kept in {}",
                rebuilt.frames,
                rebuilt.report.summary(),
                rebuilt.replaced.display()
            );
            Ok(())
        }
        Some(Command::ReplicaCredential { rule }) => {
            if !config.replication.iter().any(|r| r.name == rule) {
                anyhow::bail!("no [[replication]] rule is named `{rule}` in the configuration");
            }
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line).context("reading the credential from standard input")?;
            let path = wormbox_server::replication::seal_credential(&config.storage.data_dir, &rule, &line)?;
            println!("sealed the credential of replication rule `{rule}` in {} (mode 0600)", path.display());
            Ok(())
        }
        Some(Command::Restore { from_replica: true, keys, published, no_published_checkpoint, .. }) => {
            let options = ReplicaRestoreOptions {
                data_dir: config.storage.data_dir.clone(),
                keys,
                published,
                without_published: no_published_checkpoint,
            };
            let restored = runtime
                .block_on(restore_from_replica(&config.replication, &options, Arc::new(SystemClock)))
                .context("wormboxd restore --from-replica failed")?;
            let dir = config.storage.data_dir.display();
            println!(
                "restored {dir} from the replica of rule `{}` through its signed checkpoint {} (ledger now at {}{}): \
                 {} buckets, {} versions ({} bytes), {} delete markers; {}",
                restored.rule,
                restored.through,
                restored.ledger_sequence,
                match restored.newest_published {
                    Some(seq) => format!("; newest published checkpoint {seq} reached"),
                    None => String::new(),
                },
                restored.buckets,
                restored.versions,
                restored.bytes,
                restored.markers,
                restored.summary
            );
            // The secrets themselves only in the 0600 file, never on the terminal or in a log.
            println!(
                "{} principals keep their access keys with new secrets, in {dir}/{RESTORED_CREDENTIALS_FILE} \
                 (mode 0600): hand them out, then delete the file; MFA devices are enrolled again",
                restored.principals.len()
            );
            Ok(())
        }
        Some(Command::Restore { from, keys, published, no_published_checkpoint, .. }) => {
            let Some(from) = from else { anyhow::bail!("--from BACKUP_DIR or --from-replica") };
            let options = RestoreOptions {
                from,
                data_dir: config.storage.data_dir.clone(),
                keys,
                published,
                without_published: no_published_checkpoint,
            };
            let restored = wormbox_server::backup::restore(&options).context("wormboxd restore failed")?;
            println!(
                "restored {} up to ledger entry {} (backup checkpoint {}{}; the MFA master key opens all {} \
                 device seeds): {}",
                config.storage.data_dir.display(),
                restored.ledger_sequence,
                restored.checkpoint.sequence,
                match restored.newest_published {
                    Some(seq) => format!(", newest published checkpoint {seq} reached"),
                    None => String::new(),
                },
                restored.devices,
                restored.summary
            );
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
