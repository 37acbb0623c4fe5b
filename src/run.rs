//! `nrt run --role producer|consumer|all`: the actors of the role, under their supervisors, and the
//! admin API, in one actix System, until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::actors::{self, health::Health, kafka_reader, Shared};
use crate::admin::{self, AdminState};
use crate::config::file::{self, FileError};
use crate::config::{PipelineConfig, Role, ServicesConfig};
use crate::log_summary;
use crate::metrics::PipelineMetrics;
use crate::probes::{Probes, Service};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Which chains to run.
    #[arg(long, env = "NRT_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    #[command(flatten)]
    pub services: ServicesConfig,
    #[command(flatten)]
    pub pipeline: PipelineConfig,
    /// A pipelines file (TOML, see docs/configuration.md): the pipeline's settings come from it
    /// instead of the environment (both together are an error).
    #[arg(long = "config", env = "NRT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

impl RunArgs {
    /// The pipeline of the pipelines file, if one is given, in place of the environment's.
    fn with_pipelines_file(mut self) -> Result<RunArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let given = file::given_outside(|var| std::env::var_os(var), &args);
        if !given.is_empty() {
            return Err(ConfigError(FileError::Both { path, given }.to_string()));
        }
        let mut pipelines = file::load(&path, &self.pipeline).map_err(|e| ConfigError(e.to_string()))?;
        if pipelines.len() > 1 {
            let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
            return Err(ConfigError(format!(
                "{}: {} pipelines ({}): this version runs one pipeline per process; run an `nrt run \
                 --config` per pipeline, each with a file of its own",
                path.display(),
                pipelines.len(),
                names.join(", ")
            )));
        }
        if let Some(only) = pipelines.pop() {
            log::info!("nrt run: pipeline '{}' from {}", only.name, path.display());
            self.pipeline = only.config;
        }
        Ok(self)
    }
}

/// A configuration error: `nrt` exits with code 2 and the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    args.services.validate().map_err(ConfigError)?;
    let args = args.with_pipelines_file()?;
    args.pipeline.validate().map_err(ConfigError)?;
    let system = actix::System::new();
    system.block_on(serve(args))
}

/// The services the role needs, probed once before anything starts: a refusal (credentials, TLS,
/// rights) stops the start, so nothing is consumed, let alone committed, by a pipeline that cannot
/// write. A service that is down or unreachable is not a refusal: the actors wait for it, as always.
async fn preflight(args: &RunArgs) -> anyhow::Result<()> {
    let mut needed = vec![Service::Kafka, Service::Registry];
    if args.role.consumes() {
        needed.extend([Service::Minio, Service::Clickhouse]);
    }
    let probes = Probes::new(&args.services, None, Duration::from_secs(5));
    let refusals: Vec<String> = probes
        .all(&needed)
        .await
        .into_iter()
        .filter_map(|p| {
            let f = p.failure.filter(|f| f.stage.is_misconfiguration())?;
            Some(format!("{} at {}: {f} (fix: {})", p.service, p.endpoint, f.fix))
        })
        .collect();
    if refusals.is_empty() {
        return Ok(());
    }
    Err(ConfigError(format!("refused by {}", refusals.join("; refused by "))).into())
}

async fn serve(args: RunArgs) -> anyhow::Result<ExitCode> {
    let listener = admin::listen(&args.pipeline.admin_addr)?;
    let shared = Shared {
        metrics: PipelineMetrics::new()?,
        health: Arc::new(Health::default()),
    };
    preflight(&args).await?;
    let started = actors::supervisor::start(args.role, &args.services, &args.pipeline, &shared)
        .map_err(|e| anyhow::anyhow!("starting the pipeline: {e}"))?;
    let history = Arc::new(admin::history::History::default());
    admin::history::spawn(shared.metrics.clone(), history.clone());
    let state = AdminState {
        health: shared.health.clone(),
        token: args.pipeline.admin_token.clone(),
        restarters: started.restarters.clone(),
        flusher: started.batcher.clone().map(|b| b.recipient()),
        #[cfg(debug_assertions)]
        crashers: started.crashers.clone(),
        metrics: shared.metrics.clone(),
        services: args.services.clone(),
        probes: Arc::new(crate::probes::Probes::new(&args.services, None, Duration::from_secs(2))),
        role: args.role,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()?,
        history: history.clone(),
        started: std::time::Instant::now(),
        dashboards_url: args.pipeline.dashboards_url.clone(),
    };
    let (server, addrs) = admin::serve(listener, state)?;
    for addr in &addrs {
        // Machine-readable: tests start with --admin-addr 127.0.0.1:0 and read the port here.
        println!("nrt admin listening on http://{addr}");
    }
    log::info!("nrt run: role {:?}, topic {}", args.role, args.pipeline.topic);
    log_summary::spawn(
        shared.metrics.clone(),
        Duration::from_secs(args.pipeline.log_summary_secs),
    );
    let handle = server.handle();
    actix::spawn(async move {
        if let Err(e) = server.await {
            log::error!("admin API stopped: {e}");
        }
    });
    wait_for_signal().await?;
    let timeout = Duration::from_millis(args.pipeline.shutdown_timeout_ms);
    log::info!("nrt run: draining (at most {timeout:?}; a second signal exits at once)");
    actix::spawn(async {
        if wait_for_signal().await.is_ok() {
            log::warn!("nrt run: second signal: exiting now; what is not committed will be read again");
            std::process::exit(SECOND_SIGNAL_EXIT);
        }
    });
    let drained = tokio::time::timeout(timeout, drain(&started)).await.is_ok();
    if let Some(reader) = &started.reader {
        // Leaving the group lets a successor take the partitions without waiting for the session timeout.
        let _ = tokio::time::timeout(Duration::from_secs(5), reader.send(kafka_reader::Shutdown)).await;
    }
    handle.stop(true).await;
    if drained {
        log::info!("nrt run: drained; every batch read was written and committed");
        Ok(ExitCode::SUCCESS)
    } else {
        log::warn!(
            "nrt run: not drained within {timeout:?} (a sink or Kafka is down?); what is not committed will \
             be read again by the next consumer"
        );
        Ok(ExitCode::from(NOT_DRAINED_EXIT))
    }
}

/// Exit codes of a shutdown that did not finish its drain: nothing is lost (uncommitted batches are
/// read again), but the operator should know.
pub const NOT_DRAINED_EXIT: u8 = 75;
pub const SECOND_SIGNAL_EXIT: i32 = 130;

/// Graceful shutdown: publish what was polled, stop reading, write and commit every open batch.
async fn drain(started: &actors::supervisor::Started) {
    if let Some(poller) = &started.poller {
        let _ = poller.send(actors::poller::Shutdown).await;
    }
    if let Some(reader) = &started.reader {
        let _ = reader.send(kafka_reader::StopReading).await;
    }
    if let Some(batcher) = &started.batcher {
        let _ = batcher.send(actors::batcher::Drain).await;
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
