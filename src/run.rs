//! `nrt run --role producer|consumer|all`: the actors of the role, under their supervisors, and the
//! admin API, in one actix System, until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

mod pipelines;

use crate::actors::{self, kafka_reader};
use crate::admin::{self, AdminState};
use crate::config::file::{self, FileError};
use crate::config::{PipelineConfig, Role, ServicesConfig};
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
    /// The pipelines file's pipelines (None: the environment configures the one pipeline).
    fn pipelines_file(&self) -> Result<Option<Vec<file::Pipeline>>, ConfigError> {
        let Some(path) = self.config.clone() else {
            self.pipeline.validate().map_err(|e| ConfigError(e.to_string()))?;
            return Ok(None);
        };
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let given = file::given_outside(|var| std::env::var_os(var), &args);
        if !given.is_empty() {
            return Err(ConfigError(FileError::Both { path, given }.to_string()));
        }
        let pipelines = file::load(&path, &self.pipeline).map_err(|e| ConfigError(e.to_string()))?;
        for p in &pipelines {
            log::info!("nrt run: pipeline '{}' from {}", p.name, path.display());
        }
        Ok(Some(pipelines))
    }
}

/// A configuration error: `nrt` exits with code 2 and the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    args.services.validate().map_err(|e| ConfigError(e.to_string()))?;
    let pipelines = args.pipelines_file()?;
    // A table per tenant is made on one server only (`clickhouse::tenants`), not on a cluster yet.
    let tables = match &pipelines {
        Some(file) => file.iter().map(|p| &p.config.table).collect(),
        None => vec![&args.pipeline.table],
    };
    if !args.services.clickhouse.cluster.is_empty() && tables.iter().any(|t| t.route().is_some()) {
        return Err(ConfigError(
            "NRT_CLICKHOUSE_TABLE: a table per tenant ({field:…}) is not supported on a ClickHouse cluster \
             (NRT_CLICKHOUSE_CLUSTER) yet"
                .into(),
        )
        .into());
    }
    let system = actix::System::new();
    system.block_on(serve(args, pipelines))
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

async fn serve(args: RunArgs, file: Option<Vec<file::Pipeline>>) -> anyhow::Result<ExitCode> {
    let listener = admin::listen(&args.pipeline.admin_addr)?;
    preflight(&args).await?;
    let running = pipelines::Running::default();
    let stop_discovery = Arc::new(std::sync::atomic::AtomicBool::new(false));
    match &file {
        None => running.start(&args, None, &args.pipeline)?,
        Some(templates) => {
            let (instances, share) = pipelines::at_start(&args, templates).await?;
            for p in instances {
                let mut config = p.config;
                config.max_inflight_bytes = share;
                running.start(&args, Some(&p.name), &config)?;
            }
            let discovery = pipelines::discover(args.clone(), templates.clone(), running.clone(), stop_discovery.clone());
            actix::spawn(discovery);
        }
    }
    let state = AdminState {
        pipelines: running.states.clone(),
        process_metrics: if file.is_some() { Some(crate::metrics::process_registry()?) } else { None },
        token: args.pipeline.admin_token.clone(),
        services: args.services.clone(),
        probes: Arc::new(crate::probes::Probes::new(&args.services, None, Duration::from_secs(2))),
        role: args.role,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()?,
        started: std::time::Instant::now(),
        dashboards_url: args.pipeline.dashboards_url.clone(),
    };
    let (server, addrs) = admin::serve(listener, state)?;
    for addr in &addrs {
        // Machine-readable: tests start with --admin-addr 127.0.0.1:0 and read the port here.
        println!("nrt admin listening on http://{addr}");
    }
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
    stop_discovery.store(true, std::sync::atomic::Ordering::SeqCst);
    let all_started = std::mem::take(&mut *running.started.lock().unwrap_or_else(|p| p.into_inner()));
    // Every pipeline drains at once: one whose sink is down must not use up the others' time.
    let drains = futures::future::join_all(all_started.iter().map(drain));
    let drained = tokio::time::timeout(timeout, drains).await.is_ok();
    let leaves = all_started.iter().filter_map(|s| s.reader.clone()).map(|reader| async move {
        // Leaving the group lets a successor take the partitions without waiting for the session timeout.
        let _ = tokio::time::timeout(Duration::from_secs(5), reader.send(kafka_reader::Shutdown)).await;
    });
    futures::future::join_all(leaves).await;
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
