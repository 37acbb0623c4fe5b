//! The actors of `nrt run`, one per file, and the supervisor that starts them. `actors.md` tells the flow.
//!
//! producer: Poller → Encoder → KafkaPublisher
//! consumer: KafkaReader → Batcher → MinioWriter + ClickhouseWriter → (Commit) → KafkaReader

pub mod batcher;
pub mod encoder;
#[cfg(debug_assertions)]
pub mod fault;
pub mod health;
pub mod inflight;
pub mod kafka_publisher;
pub mod kafka_reader;
pub mod messages;
pub mod ownership;
pub mod poller;
pub mod supervisor;

use std::sync::Arc;

use crate::metrics::PipelineMetrics;

/// What every actor reports to: metrics, and the health the admin API shows.
#[derive(Clone)]
pub struct Shared {
    pub metrics: PipelineMetrics,
    pub health: Arc<health::Health>,
}

impl Shared {
    /// Bookkeeping of a supervisor restart; returns the restarts inside the crash-loop window.
    pub fn restarting(&self, actor: &'static str) -> usize {
        self.metrics.actor_restarts.with_label_values(&[actor]).inc();
        log::warn!("{actor}: restarting");
        self.health.restarting(actor)
    }
}
