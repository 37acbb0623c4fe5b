//! `nrt run --role producer|consumer|all`: the actors of the role, under their supervisors, and the
//! admin API, in one actix System, until SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::actors::{self, health::Health, Shared};
use crate::admin::{self, AdminState};
use crate::config::{PipelineConfig, Role, ServicesConfig};
use crate::metrics::PipelineMetrics;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Which chains to run.
    #[arg(long, env = "NRT_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    #[command(flatten)]
    pub services: ServicesConfig,
    #[command(flatten)]
    pub pipeline: PipelineConfig,
}

/// A configuration error: `nrt` exits with code 2 and the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    args.services.validate().map_err(ConfigError)?;
    args.pipeline.validate().map_err(ConfigError)?;
    let system = actix::System::new();
    system.block_on(serve(args))
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let shared = Shared {
        metrics: PipelineMetrics::new()?,
        health: Arc::new(Health::default()),
    };
    let started = actors::supervisor::start(args.role, &args.services, &args.pipeline, &shared)
        .map_err(|e| anyhow::anyhow!("starting the pipeline: {e}"))?;
    let state = AdminState {
        health: shared.health.clone(),
        token: args.pipeline.admin_token.clone(),
        #[cfg(debug_assertions)]
        crashers: started.crashers.clone(),
        metrics: shared.metrics.clone(),
        services: args.services.clone(),
        role: args.role,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()?,
    };
    let (server, addrs) = admin::bind(&args.pipeline.admin_addr, state)?;
    for addr in &addrs {
        // Machine-readable: tests start with --admin-addr 127.0.0.1:0 and read the port here.
        println!("nrt admin listening on http://{addr}");
    }
    log::info!("nrt run: role {:?}, topic {}", args.role, args.pipeline.topic);
    let handle = server.handle();
    actix::spawn(async move {
        if let Err(e) = server.await {
            log::error!("admin API stopped: {e}");
        }
    });
    wait_for_signal().await?;
    log::info!("nrt run: stopping");
    let grace = Duration::from_secs(30);
    if let Some(poller) = &started.poller {
        if tokio::time::timeout(grace, poller.send(actors::poller::Shutdown))
            .await
            .is_err()
        {
            log::warn!("poller did not stop within {grace:?}");
        }
    }
    if let Some(reader) = &started.reader {
        let _ = tokio::time::timeout(grace, reader.send(actors::kafka_reader::Shutdown)).await;
    }
    handle.stop(true).await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
