//! Records whose schema id the registry says it does not know: poison, or a registry that is wrong?
//!
//! A poison record (garbage bytes, an id from some other registry) is rare and sits among good ones; a
//! wrong registry (a typo in `NRT_SCHEMA_REGISTRY_URL`, a registry restored from an old backup) makes
//! *every* record look like that. So such records are held, not dead-lettered at once, while they come
//! in a row: the first record that is not one of them ends the run, and the run is poison. A run that
//! reaches `RUN_THRESHOLD` records means the registry is wrong: nothing is dead-lettered, the reader
//! pauses and says so. A run still open after `RUN_TIMEOUT` (a trickle, then silence) is poison.
//! (A registry that does not know the topic's subject at all is wrong at once: see `read_loop.rs`.)

use std::time::{Duration, Instant};

/// Records with unknown schema ids in a row that mean "the registry is wrong", not "poison".
pub const RUN_THRESHOLD: usize = 100;
/// How long a shorter run may stay open before it is judged poison.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep holding: not decided yet.
    Hold,
    /// The run reached the threshold: the registry is wrong; nothing of it is poison.
    RegistryWrong,
}

/// The run being held, in read order.
#[derive(Debug)]
pub struct UnknownRun<R> {
    held: Vec<R>,
    since: Option<Instant>,
}

impl<R> Default for UnknownRun<R> {
    fn default() -> Self {
        UnknownRun {
            held: Vec::new(),
            since: None,
        }
    }
}

impl<R> UnknownRun<R> {
    pub fn push(&mut self, record: R, now: Instant) -> Verdict {
        self.since.get_or_insert(now);
        self.held.push(record);
        match self.held.len() >= RUN_THRESHOLD {
            true => Verdict::RegistryWrong,
            false => Verdict::Hold,
        }
    }

    /// A run is being held (cheaper to ask per record than `expired`, which needs the time).
    pub fn is_open(&self) -> bool {
        self.since.is_some()
    }

    /// Open for longer than `RUN_TIMEOUT`.
    pub fn expired(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|s| now.saturating_duration_since(s) >= RUN_TIMEOUT)
    }

    /// Ends the run: its records, in read order.
    pub fn take(&mut self) -> Vec<R> {
        self.since = None;
        std::mem::take(&mut self.held)
    }

    /// Keeps only the records `keep` accepts (those of partitions still owned).
    pub fn retain(&mut self, keep: impl FnMut(&R) -> bool) {
        self.held.retain(keep);
        if self.held.is_empty() {
            self.since = None;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &R> {
        self.held.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_means_the_registry_is_wrong() {
        let mut run = UnknownRun::default();
        let now = Instant::now();
        for i in 0..RUN_THRESHOLD - 1 {
            assert_eq!(run.push(i, now), Verdict::Hold, "record {i}");
        }
        assert_eq!(run.push(RUN_THRESHOLD, now), Verdict::RegistryWrong);
        assert_eq!(run.take().len(), RUN_THRESHOLD);
        assert_eq!(run.iter().count(), 0);
    }

    #[test]
    fn a_short_run_is_poison_once_ended_or_expired() {
        let mut run = UnknownRun::default();
        let t0 = Instant::now();
        run.push("a", t0);
        run.push("b", t0 + Duration::from_secs(1));
        assert!(!run.expired(t0 + RUN_TIMEOUT - Duration::from_millis(1)));
        assert!(run.expired(t0 + RUN_TIMEOUT), "measured from the first record held");
        assert_eq!(run.take(), vec!["a", "b"], "in read order");
        assert!(!run.expired(t0 + RUN_TIMEOUT * 2), "an empty run never expires");
    }

    #[test]
    fn records_of_revoked_partitions_leave_the_run() {
        let mut run = UnknownRun::default();
        let now = Instant::now();
        run.push((0, 10), now);
        run.push((1, 11), now);
        run.retain(|(p, _)| *p != 0);
        assert_eq!(run.iter().collect::<Vec<_>>(), vec![&(1, 11)]);
        run.retain(|_| false);
        assert!(!run.expired(now + RUN_TIMEOUT));
    }
}
