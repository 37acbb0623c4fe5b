//! The pipelines `nrt run` runs: the environment's one, or a pipelines file's, each pipeline of
//! several topics as an instance per topic (`config/file/topics.rs`); and, for a `topic_pattern`, the
//! topics created while running, picked up every `DISCOVERY_INTERVAL`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::RunArgs;
use crate::actors::supervisor::{self, Started};
use crate::actors::{health::Health, Shared};
use crate::admin::{history, PipelineState};
use crate::config::file::{self, Pipeline, Topics, DISCOVERY_INTERVAL};
use crate::config::PipelineConfig;
use crate::log_summary;
use crate::metrics::PipelineMetrics;

/// The least in-flight budget a pipeline of a file gets, however many share the process's.
const MIN_INFLIGHT_SHARE: u64 = 1 << 20;

/// What runs, shared with the admin API (which lists it) and the shutdown (which drains it).
#[derive(Clone, Default)]
pub struct Running {
    pub states: Arc<RwLock<Vec<Arc<PipelineState>>>>,
    pub started: Arc<Mutex<Vec<Started>>>,
    configs: Arc<Mutex<Vec<Pipeline>>>,
}

impl Running {
    /// Starts `p` (None: the environment's pipeline) and adds it to what runs.
    pub fn start(&self, args: &RunArgs, name: Option<&str>, config: &PipelineConfig) -> anyhow::Result<()> {
        let metrics = match name {
            Some(name) => PipelineMetrics::of_pipeline(name)?,
            None => PipelineMetrics::new()?,
        };
        let shared = Shared {
            metrics,
            health: Arc::new(Health::default()),
        };
        let who = name.map_or("nrt run".to_owned(), |n| format!("nrt run: {n}"));
        let started = supervisor::start(args.role, &args.services, config, &shared)
            .map_err(|e| anyhow::anyhow!("{who}: starting the pipeline: {e}"))?;
        let history = Arc::new(history::History::default());
        history::spawn(shared.metrics.clone(), history.clone());
        log::info!("{who}: role {:?}, topic {}", args.role, config.topic);
        log_summary::spawn(shared.metrics.clone(), Duration::from_secs(args.pipeline.log_summary_secs), who);
        let state = PipelineState {
            name: name.map(str::to_owned),
            health: shared.health.clone(),
            restarters: started.restarters.clone(),
            flusher: started.batcher.clone().map(|b| b.recipient()),
            #[cfg(debug_assertions)]
            crashers: started.crashers.clone(),
            metrics: shared.metrics.clone(),
            history,
        };
        self.states.write().unwrap_or_else(|p| p.into_inner()).push(Arc::new(state));
        self.started.lock().unwrap_or_else(|p| p.into_inner()).push(started);
        if let Some(name) = name {
            let p = Pipeline {
                name: name.to_owned(),
                config: config.clone(),
                topics: Topics::One,
            };
            self.configs.lock().unwrap_or_else(|p| p.into_inner()).push(p);
        }
        Ok(())
    }

    /// Shares the process's in-flight budget out evenly again among the running consumers (each at
    /// least `MIN_INFLIGHT_SHARE`): after a pattern's topic started one more, the total stays the
    /// budget instead of growing by a share per topic found. Returns the share.
    pub fn reshare(&self, budget: u64) -> u64 {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let budgets: Vec<_> = started.iter().filter_map(|s| s.inflight.clone()).collect();
        let share = share_of(budget, budgets.len());
        for inflight in budgets {
            inflight.set_bound(share);
        }
        share
    }

    /// The running pipelines' names.
    fn names(&self) -> BTreeSet<String> {
        let configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        configs.iter().map(|p| p.name.clone()).collect()
    }
}

/// The instances to run at start of a file's pipelines, each with its share of the in-flight budget:
/// the budget is shared out, not pooled, so a stuck pipeline cannot take the others' memory.
pub async fn at_start(args: &RunArgs, pipelines: &[Pipeline]) -> anyhow::Result<(Vec<Pipeline>, u64)> {
    let existing = existing_topics(args, pipelines).await;
    let mut instances = Vec::new();
    for p in pipelines {
        instances.extend(p.instances(&existing).map_err(super::ConfigError)?);
    }
    file::check_apart(&instances).map_err(super::ConfigError)?;
    let share = share_of(args.pipeline.max_inflight_bytes, instances.len());
    Ok((instances, share))
}

fn share_of(budget: u64, pipelines: usize) -> u64 {
    (budget / pipelines.max(1) as u64).max(MIN_INFLIGHT_SHARE)
}

/// The cluster's topics, when a pattern needs them (none while Kafka cannot be asked: discovery
/// finds them later).
async fn existing_topics(args: &RunArgs, pipelines: &[Pipeline]) -> Vec<String> {
    if !pipelines.iter().any(|p| matches!(p.topics, Topics::Pattern(_))) {
        return Vec::new();
    }
    match crate::kafka::topic_names(&args.services.kafka, Duration::from_secs(10)).await {
        Ok(names) => names,
        Err(e) => {
            log::warn!("nrt run: topics for the patterns not listed yet: {e}");
            Vec::new()
        }
    }
}

/// Every `DISCOVERY_INTERVAL`, starts an instance for each topic a pattern matches that has none yet,
/// unless it would share a group, table or lake prefix with a running pipeline (logged, and tried
/// again next time), and shares the budget out anew. Runs until `stop` is set.
pub async fn discover(args: RunArgs, pipelines: Vec<Pipeline>, running: Running, stop: Arc<std::sync::atomic::AtomicBool>) {
    let patterns: Vec<Pipeline> = pipelines
        .into_iter()
        .filter(|p| matches!(p.topics, Topics::Pattern(_)))
        .collect();
    if patterns.is_empty() {
        return;
    }
    let mut ticks = tokio::time::interval(DISCOVERY_INTERVAL);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let existing = match crate::kafka::topic_names(&args.services.kafka, Duration::from_secs(10)).await {
            Ok(names) => names,
            Err(e) => {
                log::debug!("nrt run: topic discovery: {e}");
                continue;
            }
        };
        let known = running.names();
        for pattern in &patterns {
            for topic in pattern.matching(&existing) {
                let instance = match pattern.instance(topic) {
                    Ok(i) if !known.contains(&i.name) => i,
                    Ok(_) => continue,
                    Err(e) => {
                        log::error!("nrt run: topic {topic} matches pipeline '{}' but: {e}", pattern.name);
                        continue;
                    }
                };
                let mut all = running.configs.lock().unwrap_or_else(|p| p.into_inner()).clone();
                all.push(instance.clone());
                if let Err(e) = file::check_apart(&all) {
                    log::error!("nrt run: topic {topic} not started: {e}");
                    continue;
                }
                let mut config = instance.config;
                config.max_inflight_bytes = share_of(args.pipeline.max_inflight_bytes, all.len());
                log::info!("nrt run: topic {topic} matches pipeline '{}': starting '{}'", pattern.name, instance.name);
                if let Err(e) = running.start(&args, Some(&instance.name), &config) {
                    log::error!("{e}");
                }
                let share = running.reshare(args.pipeline.max_inflight_bytes);
                log::info!("nrt run: {} pipelines, {share} bytes of in-flight budget each", all.len());
            }
        }
    }
}
