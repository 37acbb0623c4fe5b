//! One call per observation. A failure the pipeline rides out (a service down, a poll that brought
//! nothing, a record that cannot be decoded) is told three ways: a log line, the actor's health
//! (`/actors`, `/ready`) and a metric. Each event below does all three in one `emit`, the way Vector's
//! `emit!` does, and every repeated line goes through the one `Throttle` policy: the first of a streak
//! at once, then at most one line per period saying how many were held back. (Call sites used to do it
//! by hand, each with its own throttle: every 10th attempt, every 20th, every 50th, every 10 s.)

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::actors::health::Health;
use crate::actors::messages::{Failure, PublishError, SinkError};
use crate::actors::poller::PollErrorKind;
use crate::metrics::PipelineMetrics;
use crate::poison::PoisonKind;

/// The log policy for anything that repeats: the first line at once, then at most one per `every`,
/// which says how many were held back since the last.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(Throttle::EVERY)
    }
}

impl Throttle {
    /// The actors' period (librdkafka's own chatter gets a minute: `kafka::Quiet`).
    pub const EVERY: Duration = Duration::from_secs(10);

    pub const fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(n)`: log now (`n` were held back since the last line); `None`: stay quiet.
    pub fn pass(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }

    /// The streak ended (the service answers again): the next failure is logged at once.
    pub fn reset(&mut self) {
        *self = Throttle::new(self.every);
    }

    /// What a line says of the ones held back before it.
    pub fn held_back(n: u64) -> String {
        match n {
            0 => String::new(),
            n => format!(" ({n} more since the last line)"),
        }
    }
}

/// Something an actor tries again until it works (a topic to create, a schema to register, a
/// transaction to commit): its health keeps the last error; the log says it under the throttle.
pub struct Retrying<'a> {
    pub actor: &'static str,
    /// What failed, for the line (`batch p1 @10..20`); empty when the error says it all.
    pub what: &'a str,
    pub error: &'a dyn Display,
}

impl Retrying<'_> {
    pub fn emit(self, health: &Health, throttle: &mut Throttle) {
        let message = match self.what {
            "" => self.error.to_string(),
            what => format!("{what}: {}", self.error),
        };
        if let Some(held) = throttle.pass(Instant::now()) {
            log::warn!("{}: {message}; retrying{}", self.actor, Throttle::held_back(held));
        }
        health.error(self.actor, message);
    }
}

/// A sink did not take a batch; the Batcher writes it again. A sink that refuses every write
/// (`Failure::Misconfigured`) holds the pipeline until an operator fixes it: the Batcher is then not
/// ready (`/ready` names it), unlike when a service is merely down or slow.
pub struct SinkFailed<'a> {
    /// The batch (`p1 @10..20`).
    pub batch: &'a str,
    pub error: &'a SinkError,
}

impl SinkFailed<'_> {
    /// Whether the failure holds the pipeline (the caller says `running` once the batch is written).
    pub fn emit(self, health: &Health, throttle: &mut Throttle) -> bool {
        let (batch, e) = (self.batch, self.error);
        if let Some(held) = throttle.pass(Instant::now()) {
            log::warn!("{BATCHER}: batch {batch}: {e} ({:?}); retrying{}", e.failure, Throttle::held_back(held));
        }
        let said = format!("batch {batch}: {e}");
        match e.failure {
            Failure::Misconfigured => {
                health.blocked(BATCHER, said);
                true
            }
            _ => {
                health.error(BATCHER, said);
                false
            }
        }
    }
}

/// A poll of the events API that brought nothing usable: counted by kind, backed off.
pub struct PollFailed<'a> {
    pub kind: PollErrorKind,
    pub message: &'a str,
    /// Failures in a row, this one included.
    pub streak: u64,
}

impl PollFailed<'_> {
    pub fn emit(self, metrics: &PipelineMetrics, health: &Health, throttle: &mut Throttle) {
        let kind = self.kind.label();
        metrics.poll_errors.with_label_values(&[kind]).inc();
        if throttle.pass(Instant::now()).is_some() {
            log::warn!(
                "{POLLER}: {} ({kind}), {} failure(s) in a row; backing off",
                self.message,
                self.streak
            );
        }
        health.error(POLLER, format!("{kind}: {}", self.message));
    }
}

/// A polled batch that is not in Kafka yet: counted by why (`PublishError::kind`), kept, sent again.
pub struct NotPublished<'a> {
    pub error: &'a PublishError,
    pub events: usize,
}

impl NotPublished<'_> {
    pub fn emit(self, metrics: &PipelineMetrics, health: &Health, throttle: &mut Throttle) {
        metrics.poll_errors.with_label_values(&[self.error.kind()]).inc();
        if let Some(held) = throttle.pass(Instant::now()) {
            log::warn!(
                "{POLLER}: batch of {} not published yet: {}; retrying{}",
                self.events,
                self.error,
                Throttle::held_back(held)
            );
        }
        health.error(POLLER, self.error.to_string());
    }
}

/// A record the reader cannot decode: counted by kind, on its way to the dead-letter topic.
pub struct Undecodable<'a> {
    pub partition: i32,
    pub offset: i64,
    pub kind: PoisonKind,
    pub message: &'a str,
    pub dead_letter_topic: &'a str,
}

impl Undecodable<'_> {
    pub fn emit(self, metrics: &PipelineMetrics, throttle: &mut Throttle) {
        metrics.decode_errors.with_label_values(&[self.kind.label()]).inc();
        if let Some(held) = throttle.pass(Instant::now()) {
            log::warn!(
                "{READER}: p{} @{}: undecodable record ({}: {}): to {}{}",
                self.partition,
                self.offset,
                self.kind,
                self.message,
                self.dead_letter_topic,
                Throttle::held_back(held)
            );
        }
    }
}

/// An error the consumer's client reports (a broker gone, a timeout); librdkafka reconnects by itself.
pub struct ConsumerError<'a> {
    pub error: &'a dyn Display,
}

impl ConsumerError<'_> {
    pub fn emit(self, health: &Health, throttle: &mut Throttle) {
        if let Some(held) = throttle.pass(Instant::now()) {
            log::warn!("{READER}: {}{}", self.error, Throttle::held_back(held));
        }
        health.error(READER, self.error.to_string());
    }
}

const POLLER: &str = crate::actors::poller::NAME;
const BATCHER: &str = crate::actors::batcher::NAME;
const READER: &str = crate::actors::kafka_reader::NAME;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_at_once_then_one_a_period_with_what_was_held_back() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.pass(t0), Some(0));
        for s in 1..10 {
            assert_eq!(t.pass(t0 + Duration::from_secs(s)), None, "{s} s");
        }
        assert_eq!(t.pass(t0 + Throttle::EVERY), Some(9));
        assert_eq!(t.pass(t0 + Throttle::EVERY + Duration::from_secs(1)), None);
        t.reset();
        assert_eq!(t.pass(t0 + Throttle::EVERY + Duration::from_secs(2)), Some(0), "a new streak");
        assert_eq!(Throttle::held_back(0), "");
        assert_eq!(Throttle::held_back(3), " (3 more since the last line)");
    }

    #[test]
    fn a_period_of_its_own() {
        let mut t = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(t.pass(t0), Some(0));
        assert_eq!(t.pass(t0 + Duration::from_secs(59)), None);
        assert_eq!(t.pass(t0 + Duration::from_secs(60)), Some(1));
    }
}
