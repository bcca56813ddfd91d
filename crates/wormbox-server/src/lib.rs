//! `wormboxd` as a library: the composition root. It opens the RocksDB
//! backend and the `Store`, creates the first admin credential, and serves
//! the gRPC services until told to stop; `init` and `backup` hold the first
//! run and the restore that the binary's subcommands call.
//!
//! Invariant: handlers call `App`, never a `Backend`; the shipped engine list
//! has no in-memory engine, and tests build servers through this same API.
#![warn(missing_docs)]

pub mod backup;
pub mod config;
pub mod disk;
pub mod evidence;
pub mod grpc;
pub mod index;
pub mod init;
pub mod metrics;
pub mod notify;
pub mod replica_restore;
pub mod replication;
pub mod telemetry;
pub mod witnesses;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use wormbox_mfa::{Authority, MasterKey};
use wormbox_model::Clock;
use wormbox_store::evidence::Ed25519Signer;
use wormbox_store::{Store, StoreError, StoreOptions};
use wormbox_store_rocksdb::{RocksBackend, RocksOptions};

pub use wormbox_app::App;

pub use crate::config::{ConfigError, WormboxdConfig};
pub use crate::grpc::budget::ReceiveBudget;

/// The file, in the data directory, that holds the first admin's credential.
pub const ADMIN_CREDENTIAL_FILE: &str = "admin.credential";

/// The file, in the data directory, that holds the key sealing MFA seeds.
pub const MFA_MASTER_KEY_FILE: &str = "mfa-master.key";

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be prepared.
    #[error("preparing data directory `{path}`")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The archive could not be opened.
    #[error("opening the archive in `{path}`")]
    OpenStore {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The MFA master key could not be created or opened.
    #[error("opening the MFA master key")]
    MfaKey(#[source] wormbox_mfa::MfaError),
    /// An integrity scrub could not run.
    #[error("running an integrity scrub")]
    Scrub(#[source] StoreError),
    /// The first admin could not be created.
    #[error("creating the first admin principal")]
    Bootstrap(#[source] StoreError),
    /// The listener could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `init` found an appliance (or part of one) where it would create one.
    #[error("refusing to initialise over `{path}`: {why}")]
    AlreadyInitialised {
        /// The directory or file found.
        path: PathBuf,
        /// What was found there.
        why: String,
    },
    /// TLS material could not be loaded or used.
    #[error("setting up TLS")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The gRPC server failed.
    #[error("serving gRPC")]
    Serve(#[source] tonic::transport::Error),
    /// The server task ended abnormally.
    #[error("the server task ended abnormally")]
    Task(#[source] tokio::task::JoinError),
    /// What an earlier run staged for a backup could not be removed.
    #[error("preparing backups")]
    Backups(#[source] wormbox_app::backup::BackupError),
    /// A replication rule cannot run (its message names the rule and why).
    #[error("{0}")]
    Replication(String),
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The S3 endpoint's bound address, when `[s3]` is enabled.
    pub s3_addr: Option<SocketAddr>,
    /// The metrics listener's bound address, when `[metrics]` is enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The first admin's `AKID:SECRET`, present only on the very first start.
    pub new_admin_credential: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
    duties: Vec<JoinHandle<()>>,
    app: Arc<App>,
    receive_budget: ReceiveBudget,
    s3: Option<wormbox_s3::S3Server>,
    metrics: Option<metrics::listener::MetricsServer>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        for duty in &self.duties {
            duty.abort();
        }
    }
}

impl RunningServer {
    /// Returns the application layer (tests inspect the store through it).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Returns the receive budget of Ingest and PutObject (tests watch it).
    pub fn receive_budget(&self) -> &ReceiveBudget {
        &self.receive_budget
    }

    /// Ends running backups, stops accepting calls, lets running calls
    /// finish, and waits.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        // First: a backup whose client stopped reading never finishes, and
        // would keep the graceful shutdown waiting for its connection.
        self.app.stop_backups().await;
        if let Some(s3) = self.s3.take() {
            s3.stop().await;
        }
        if let Some(metrics) = self.metrics.take() {
            metrics.stop().await;
        }
        self.app.replication().stop().await;
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.wait().await
    }

    /// Waits until the server stops by itself (it does so only on error).
    pub async fn wait(mut self) -> Result<(), ServerError> {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        let res = task.await;
        // Awaited, not only aborted: their store handles must be gone before
        // this returns, so that the archive can be reopened at once.
        for duty in self.duties.drain(..) {
            duty.abort();
            let _ = duty.await;
        }
        match res {
            Ok(res) => res,
            Err(join) => Err(ServerError::Task(join)),
        }
    }
}

/// The storage engine's options as the configuration sets them.
pub fn rocks_options(config: &WormboxdConfig) -> RocksOptions {
    RocksOptions {
        write_buffer_bytes: config.storage.write_buffer_mib << 20,
        block_cache_bytes: config.storage.block_cache_mib << 20,
        ..RocksOptions::default()
    }
}

/// What `open_archive` opened.
struct Opened {
    store: Store,
    mfa: Authority,
    signer: Arc<Ed25519Signer>,
    backend: Arc<RocksBackend>,
    new_admin_credential: Option<String>,
}

/// Creates or opens the data directory, its keys and the archive, and the
/// first admin when there is none. Shared by `start` and `init::init`.
async fn open_archive(config: &WormboxdConfig, clock: Arc<dyn Clock>) -> Result<Opened, ServerError> {
    let data_dir = &config.storage.data_dir;
    create_private_dir(data_dir)?;
    let rocks_options = rocks_options(config);
    let db_dir = data_dir.join("db");
    let open_err = |source| ServerError::OpenStore { path: db_dir.clone(), source };
    let backend = Arc::new(
        RocksBackend::open(&db_dir, &rocks_options)
            .map_err(|e| open_err(StoreError::Backend { operation: "open", source: Arc::new(e) }))?,
    );
    if config.clock.max_rate_ms_per_s.is_some() {
        tracing::warn!(
            "[clock] max_rate_ms_per_s is retired and ignored: the compliance clock catches up with the system clock at catch_up_days_per_year; remove the key"
        );
    }
    let store_options = StoreOptions {
        max_object_bytes: config.limits.max_object_bytes,
        clock: config.clock.policy(),
        checkpoint_every: config.evidence.checkpoint_every_entries,
        reserve_bytes: config.storage.reserve_bytes,
        ..StoreOptions::default()
    };
    let (signer, created) = evidence::load_or_create_signer(data_dir)?;
    if created {
        tracing::info!(file = evidence::SIGNING_KEY_FILE, "created the checkpoint signing key (mode 0600)");
    }
    let signer = Arc::new(signer);
    let dyn_signer: Arc<dyn wormbox_store::evidence::Signer> = signer.clone();
    let dyn_backend: Arc<dyn wormbox_store::backend::Backend> = backend.clone();
    let store =
        Store::open_signed(dyn_backend, Arc::clone(&clock), store_options, Some(dyn_signer)).map_err(open_err)?;
    let (master_key, created) =
        MasterKey::load_or_create(&data_dir.join(MFA_MASTER_KEY_FILE)).map_err(ServerError::MfaKey)?;
    if created {
        tracing::info!(file = MFA_MASTER_KEY_FILE, "created the MFA master key (mode 0600)");
    }
    let mfa = Authority::new(store.clone(), master_key, clock, config.mfa.policy());
    let new_admin_credential = match store.bootstrap_admin().await.map_err(ServerError::Bootstrap)? {
        Some(admin) => {
            let credential = format!("{}:{}", admin.access_key, admin.secret);
            write_private_file(&data_dir.join(ADMIN_CREDENTIAL_FILE), &credential)?;
            Some(credential)
        }
        None => None,
    };
    Ok(Opened { store, mfa, signer, backend, new_admin_credential })
}

/// Opens the archive and starts serving. `clock` is the system clock in
/// production and a `ManualClock` in tests.
pub async fn start(config: &WormboxdConfig, clock: Arc<dyn Clock>) -> Result<RunningServer, ServerError> {
    config.validate()?;
    // Read before anything is created, so that a packaged appliance started
    // before `wormboxd init` fails without making a data directory.
    let tls_pem = match &config.tls {
        Some(tls) => Some(load_tls(&tls.cert, &tls.key)?),
        None => None,
    };
    let tls_identity = tls_pem.as_ref().map(|(cert, key)| Identity::from_pem(cert, key));
    let data_dir = &config.storage.data_dir;
    let Opened { store, mfa, signer, backend, new_admin_credential } = open_archive(config, Arc::clone(&clock)).await?;

    let backups = wormbox_app::backup::BackupSource::new(
        Arc::new(backup::RocksCopier(backend)),
        data_dir,
        std::time::Duration::from_secs(config.backup.send_timeout_seconds),
    )
    .map_err(ServerError::Backups)?;
    // Checked before serving: a replica that cannot keep what it is given
    // stops the start; one that does not answer only delays the copy.
    let public_key = wormbox_store::evidence::Signer::public_key(&*signer).to_vec();
    let replication = replication::start(&config.replication, data_dir, &store, &public_key).await?;
    let uploads = wormbox_app::multipart::MultipartUploads::new(
        data_dir,
        Arc::clone(&clock),
        std::time::Duration::from_secs(config.s3.multipart_expiry_hours * 3600),
    );
    // Uploads abandoned while the appliance was down expire now.
    if let Err(err) = uploads.sweep() {
        tracing::warn!(error = %err, "could not sweep expired multipart uploads");
    }
    let app = Arc::new(
        App::new(
            store,
            mfa,
            Arc::clone(&signer),
            config.limits.max_ingest_record_bytes,
            backups,
            Arc::clone(&replication),
            Arc::clone(&clock),
        )
        .with_multipart(uploads)
        .with_scrub_interval(std::time::Duration::from_secs(config.evidence.scrub_interval_seconds)),
    );
    let receive_budget = ReceiveBudget::new(
        usize::try_from(config.limits.receive_budget_bytes).unwrap_or(usize::MAX),
        config.limits.max_message_bytes,
        std::time::Duration::from_millis(config.limits.message_receive_ms),
    );
    let metrics = Arc::new(metrics::Metrics::new());
    let (routes, health) =
        grpc::routes(Arc::clone(&app), config.limits.max_message_bytes, receive_budget.clone(), Arc::clone(&metrics))
            .await
            .map_err(|e| ServerError::Tls(Box::new(e)))?;
    let listener = TcpListener::bind(config.listen.addr)
        .await
        .map_err(|source| ServerError::Bind { addr: config.listen.addr, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen.addr, source })?;

    // A bound per connection on open calls: with the receive deadline, what
    // one connection can hold of the receive budget, and for how long, is bounded.
    let mut builder =
        Server::builder().max_concurrent_streams(config.limits.max_streams_per_connection).trace_fn(|request| {
            // The request id is recorded by `grpc::counted` when the call runs.
            tracing::info_span!("grpc", method = %request.uri().path(), request_id = tracing::field::Empty)
        });
    if let Some(identity) = tls_identity {
        builder =
            builder.tls_config(ServerTlsConfig::new().identity(identity)).map_err(|e| ServerError::Tls(Box::new(e)))?;
    }
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let router = builder.add_routes(routes);
    let task = tokio::spawn(async move {
        let signal = async {
            let _ = shutdown_rx.await;
        };
        // Without TCP_NODELAY, small streamed responses meet delayed ACKs and
        // every GetObject stalls for tens of milliseconds.
        let incoming = grpc::hangup::incoming(TcpIncoming::from(listener).with_nodelay(Some(true)));
        router.serve_with_incoming_shutdown(incoming, signal).await.map_err(ServerError::Serve)
    });
    let s3 = match config.s3.enabled {
        true => Some(start_s3(config, &app, tls_pem.as_ref()).await?),
        false => None,
    };
    let s3_addr = s3.as_ref().map(wormbox_s3::S3Server::addr);
    if let Some(s3) = &s3 {
        metrics.attach_s3(Arc::clone(s3.requests()));
    }
    let metrics = match config.metrics.enabled {
        true => Some(start_metrics(config, metrics, &app, &receive_budget, tls_pem.as_ref()).await?),
        false => None,
    };
    let metrics_addr = metrics.as_ref().map(metrics::listener::MetricsServer::addr);
    let witness_clients = config.witness.iter().map(config::WitnessConfig::client).collect::<Result<Vec<_>, _>>()?;
    // Started last, so that a failed start leaves no task behind.
    let mut duties = evidence::spawn_duties(
        app.store().clone(),
        Arc::clone(&replication),
        Arc::clone(&signer),
        &config.evidence,
        Arc::clone(app.scrubs()),
        Arc::clone(&clock),
    );
    duties.push(disk::spawn_watch(app.store().clone(), health).await);
    duties.extend(witnesses::spawn(app.store().clone(), signer, witness_clients));
    tracing::info!(%addr, data_dir = %data_dir.display(), "wormboxd serving");
    Ok(RunningServer {
        addr,
        s3_addr,
        metrics_addr,
        new_admin_credential,
        shutdown: Some(shutdown_tx),
        task,
        duties,
        app,
        receive_budget,
        s3,
        metrics,
    })
}

/// Runs until `shutdown` resolves, then stops cleanly.
pub async fn run(
    config: &WormboxdConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let notifier = Arc::new(notify::Notifier::from_env());
    let opening = notifier.extend_start();
    let server = start(config, clock).await?;
    drop(opening);
    if let Some(credential) = &server.new_admin_credential {
        // Printed once, on first start only, as DESIGN.md prescribes; it is
        // also in the data directory with mode 0600. Never logged.
        println!(
            "first start: admin credential {credential} (also in {})",
            config.storage.data_dir.join(ADMIN_CREDENTIAL_FILE).display()
        );
    }
    // Before the gRPC line: scripts and tests read up to that one to find
    // the port when listening on port 0, and may stop reading there.
    if let Some(s3) = server.s3_addr {
        println!("wormboxd S3 listening on {s3}");
    }
    if let Some(metrics) = server.metrics_addr {
        println!("wormboxd metrics listening on {metrics}");
    }
    println!("wormboxd listening on {}", server.addr);
    // After every listener is bound and the archive open: a unit ordered
    // after this one starts when it can be served.
    let store = server.app().store().clone();
    notifier.send(&format!("READY=1\n{}", notify::status_line(&store)));
    let keeper = {
        let notifier = Arc::clone(&notifier);
        tokio::spawn(async move { notifier.keep_alive(store).await })
    };
    shutdown.await;
    notifier.send("STOPPING=1\nSTATUS=stopping: finishing the calls in flight");
    // Awaited: its store handle must be gone before the archive closes.
    keeper.abort();
    let _ = keeper.await;
    tracing::info!("shutting down");
    server.stop().await
}

/// Starts the S3 endpoint on `[s3] listen`, over TLS with gRPC's
/// certificate when `[tls]` is set.
async fn start_s3(
    config: &WormboxdConfig,
    app: &Arc<App>,
    tls: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<wormbox_s3::S3Server, ServerError> {
    let addr = config.s3.listen;
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
    let acceptor = match tls {
        Some((cert, key)) => Some(s3_tls(cert, key)?),
        None => None,
    };
    let options = wormbox_s3::S3Options {
        region: config.s3.region.clone(),
        domain: config.s3.domain.clone(),
        max_object_bytes: config.limits.max_object_bytes,
        header_timeout: std::time::Duration::from_millis(config.s3.header_timeout_ms),
        body_idle: std::time::Duration::from_millis(config.s3.body_idle_ms),
        max_connections_per_address: config.s3.max_connections_per_address,
    };
    // Request dates are checked against real time, as S3 clients sign with
    // it: a network protocol's clock, not the compliance clock.
    let service = wormbox_s3::service(Arc::clone(app), &options, Arc::new(wormbox_model::SystemClock));
    let server = wormbox_s3::serve(listener, acceptor, service, &options)
        .map_err(|source| ServerError::Bind { addr, source })?;
    tracing::info!(addr = %server.addr(), region = %options.region, "S3 endpoint serving");
    Ok(server)
}

/// Starts the metrics listener on `[metrics] listen`, over TLS with gRPC's
/// certificate when `[tls]` is set.
async fn start_metrics(
    config: &WormboxdConfig,
    metrics: Arc<metrics::Metrics>,
    app: &Arc<App>,
    budget: &ReceiveBudget,
    tls: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<metrics::listener::MetricsServer, ServerError> {
    let addr = config.metrics.listen;
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
    let acceptor = match tls {
        Some((cert, key)) => Some(s3_tls(cert, key)?),
        None => None,
    };
    let server = metrics::listener::serve(listener, acceptor, metrics, Arc::clone(app), budget.clone())
        .map_err(|source| ServerError::Bind { addr, source })?;
    tracing::info!(addr = %server.addr(), "metrics serving");
    Ok(server)
}

/// A TLS acceptor of the S3 endpoint (and the metrics listener) from PEM
/// certificate chain and key.
fn s3_tls(cert: &[u8], key: &[u8]) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |e: String| ServerError::Tls(e.into());
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("reading the TLS certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| tls_err(format!("reading the TLS key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(format!("the TLS certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reads the TLS certificate and key (PEM); a key file others may read is refused.
fn load_tls(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound { " (run `wormboxd init` first)" } else { "" };
            ServerError::Tls(format!("reading {}: {e}{hint}", path.display()).into())
        })
    };
    let cert_pem = read(cert)?;
    let mode = std::fs::metadata(key)
        .map_err(|e| ServerError::Tls(format!("reading {}: {e} (run `wormboxd init` first)", key.display()).into()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(ServerError::Tls(
            format!("{} is readable by others (mode {:o}); allow at most 0640", key.display(), mode & 0o777).into(),
        ));
    }
    Ok((cert_pem, read(key)?))
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |source| ServerError::DataDir { path: dir.to_owned(), source };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
    }
    Ok(())
}

fn write_private_file(path: &Path, contents: &str) -> Result<(), ServerError> {
    write_new_file(path, format!("{contents}\n").as_bytes(), 0o600)
        .map_err(|source| ServerError::DataDir { path: path.to_owned(), source })
}

/// Creates `path` (never over an existing file) with exactly `mode`, whatever
/// the umask, writes `contents` and syncs it. Keys, credentials, certificates.
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}
