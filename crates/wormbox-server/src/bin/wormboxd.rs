//! `wormboxd`: process entry point. Parses flags, loads the config, installs
//! tracing and calls `wormbox_server::run`; nothing testable lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use wormbox_model::SystemClock;
use wormbox_server::WormboxdConfig;

/// The Wormbox WORM archive daemon.
#[derive(Debug, Parser)]
#[command(name = "wormboxd", version)]
struct Args {
    /// TOML config file (see deploy/config/wormboxd.toml); defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address, overriding the config.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory, overriding the config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => WormboxdConfig::load(path)?,
        None => WormboxdConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen.addr = listen;
    }
    if let Some(data_dir) = args.data_dir {
        config.storage.data_dir = data_dir;
    }
    wormbox_server::telemetry::init(&config.log.filter);
    tracing::info!(
        listen = %config.listen.addr,
        data_dir = %config.storage.data_dir.display(),
        tls = config.tls.is_some(),
        max_object_bytes = config.limits.max_object_bytes,
        "effective configuration"
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        wormbox_server::run(&config, Arc::new(SystemClock), shutdown_signal()).await.context("wormboxd failed")
    })
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
