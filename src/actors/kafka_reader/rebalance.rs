//! The consumer's rebalance callbacks (rdkafka runs them on the thread that polls the consumer: the
//! reader's own arbiter, never the actors' thread, so they may block while the Batcher works).
//!
//! The protocol, in order (actors.md, "Rebalances"):
//! - revoked: tell the Batcher (it drops the open batches of those partitions at once), wait until
//!   their batches in flight are written and committed, at most `revoke_timeout` (a partition whose
//!   assignment was *lost* — session expired — is not waited for: its commits would be refused);
//!   then forget them in `Ownership`, under the lock commits take, so nothing of them is committed
//!   after this callback returns and the rebalance can go on.
//! - assigned: each newly assigned partition gets a fresh epoch; only those start afresh (with the
//!   cooperative-sticky strategy pinned in `kafka_reader.rs`, the others keep their batches).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Recipient;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use super::NAME;
use crate::actors::messages::Revoke;
use crate::actors::ownership::{Epoch, Ownership};
use crate::actors::Shared;
use crate::kafka::StatsContext;

pub struct ReaderContext {
    pub stats: StatsContext,
    pub topic: String,
    pub ownership: Arc<Ownership>,
    pub batcher: Recipient<Revoke>,
    pub revoke_timeout: Duration,
    /// Set when the process leaves the group on shutdown: whatever is still in flight then has had its
    /// chance (the drain), so revocations do not wait.
    pub leaving: Arc<AtomicBool>,
    pub shared: Shared,
    /// What this consumer was assigned, with the epochs: another consumer of the same process (after
    /// a reader restart) may own the same partitions under newer epochs, which are not ours to revoke.
    pub mine: Mutex<BTreeMap<i32, Epoch>>,
}

impl ReaderContext {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }

    fn mine(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Epoch>> {
        self.mine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the Batcher to let go of `revoked`; true if their batches in flight finished in time.
    fn wait_for_batches(&self, revoked: Vec<(i32, Epoch)>, wait: Duration) -> bool {
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        self.batcher.do_send(Revoke {
            partitions: revoked,
            done,
        });
        finished.recv_timeout(wait).is_ok()
    }

    fn revoked(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions = self.partitions(tpl);
        let revoked: Vec<(i32, Epoch)> = {
            let mut mine = self.mine();
            partitions
                .iter()
                .filter_map(|p| mine.remove(p).map(|e| (*p, e)))
                .collect()
        };
        if revoked.is_empty() {
            return;
        }
        let lost = consumer.assignment_lost();
        let leaving = self.leaving.load(Ordering::SeqCst);
        let started = Instant::now();
        let wait = match lost || leaving {
            true => Duration::ZERO,
            false => self.revoke_timeout,
        };
        let finished = self.wait_for_batches(revoked.clone(), wait);
        self.ownership.revoke(&revoked);
        let m = &self.shared.metrics;
        m.rebalances
            .with_label_values(&[if lost { "lost" } else { "revoked" }])
            .inc_by(revoked.len() as u64);
        m.revoke_seconds.observe(started.elapsed().as_secs_f64());
        let took = started.elapsed();
        if lost {
            log::warn!("{NAME}: partitions {partitions:?} lost (session expired); their batches are abandoned");
        } else if leaving {
            log::info!("{NAME}: partitions {partitions:?} released on shutdown");
        } else if finished {
            log::info!("{NAME}: partitions {partitions:?} revoked; batches in flight committed in {took:?}");
        } else {
            m.revocations_timed_out.inc();
            log::warn!(
                "{NAME}: partitions {partitions:?} revoked; batches in flight not committed within {wait:?}: \
                 abandoned to the next owner (the lake keeps what was written; nothing is committed)"
            );
        }
    }
}

impl ClientContext for ReaderContext {
    fn stats(&self, stats: Statistics) {
        self.stats.stats(stats);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.stats.quiet.log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.stats.quiet.error(&error, reason);
    }
}

impl ConsumerContext for ReaderContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.revoked(consumer, tpl);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = self.partitions(tpl);
                if partitions.is_empty() {
                    return;
                }
                let given = self.ownership.assign(&partitions);
                self.mine().extend(given.iter().copied());
                self.shared
                    .metrics
                    .rebalances
                    .with_label_values(&["assigned"])
                    .inc_by(given.len() as u64);
                log::info!("{NAME}: partitions {partitions:?} assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                log::warn!("{NAME}: rebalance error: {e}");
                self.shared.health.error(NAME, format!("rebalance: {e}"));
            }
        }
    }
}
