//! The consumer's in-flight budget: bytes the process holds for what it read from Kafka and has not
//! committed (or dropped) yet: the decoded records (`Records::bytes`: rows, datums, keys, index) and,
//! while a batch is written, its lake object (`Inflight::hold`: made from the datums, held until the
//! PUT is done with it; ClickHouse rows go from the records in 256 KiB chunks). The reader adds a run
//! as it hands it over; the Batcher releases a batch when it is committed, abandoned or dropped. The
//! reader stops reading while the count is over the bound, and the Batcher writes every open batch at
//! once while it is over three quarters of it (so memory comes back as fast as the sinks take it; the
//! last quarter is room for the reads that land meanwhile and the objects being made).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::futures::Notified;

use crate::record::Records;
use tokio::sync::Notify;

#[derive(Debug)]
pub struct Inflight {
    bytes: AtomicU64,
    /// Changed while running when the process's budget is shared out again (a pipeline started).
    bound: AtomicU64,
    freed: Notify,
    gauge: Option<prometheus::IntGauge>,
    bound_gauge: Option<prometheus::IntGauge>,
    /// Runs the Batcher copied into its batches, emptied, for the reader to decode into again.
    spares: Mutex<Vec<Records>>,
}

/// What the spare runs may hold, all together: their room is resident and not counted in the budget,
/// so it is also at most a quarter of the bound (a process of several pipelines keeps no more spares
/// than one).
const SPARE_ROOM: usize = 8 << 20;

impl Default for Inflight {
    /// No bound (tests of the bookkeeping).
    fn default() -> Self {
        Inflight {
            bytes: AtomicU64::new(0),
            bound: AtomicU64::new(u64::MAX),
            freed: Notify::new(),
            gauge: None,
            bound_gauge: None,
            spares: Mutex::new(Vec::new()),
        }
    }
}

impl Inflight {
    /// A budget of `bound` bytes, reported in `gauge` (`nrt_inflight_bytes`); the bound in
    /// `bound_gauge` (`nrt_inflight_bound_bytes`).
    pub fn new(bound: u64, gauge: prometheus::IntGauge, bound_gauge: prometheus::IntGauge) -> Self {
        bound_gauge.set(bound as i64);
        Inflight {
            gauge: Some(gauge),
            bound_gauge: Some(bound_gauge),
            ..Inflight::bounded(bound)
        }
    }

    /// A budget of `bound` bytes, reported nowhere.
    pub fn bounded(bound: u64) -> Self {
        Inflight {
            bound: AtomicU64::new(bound),
            ..Inflight::default()
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub fn bound(&self) -> u64 {
        self.bound.load(Ordering::SeqCst)
    }

    /// A new bound: a reader waiting for room looks again (it may have some now).
    pub fn set_bound(&self, bound: u64) {
        self.bound.store(bound, Ordering::SeqCst);
        if let Some(g) = &self.bound_gauge {
            g.set(bound as i64);
        }
        self.freed.notify_waiters();
    }

    /// At or over the bound: the reader waits.
    pub fn over(&self) -> bool {
        self.bytes() >= self.bound()
    }

    /// Over three quarters of the bound: open batches are written now rather than at their flush interval, so the
    /// reader finds room again before it has to stop.
    pub fn pressed(&self) -> bool {
        self.bytes() >= self.bound() / 4 * 3
    }

    pub fn add(&self, n: usize) {
        let now = self.bytes.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        self.report(now);
    }

    /// Saturating: releasing more than was added is a bookkeeping bug, not a reason to wrap around.
    pub fn release(&self, n: usize) {
        let sub = |b: u64| Some(b.saturating_sub(n as u64));
        let before = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, sub)
            .unwrap_or_default();
        self.report(before.saturating_sub(n as u64));
        self.freed.notify_waiters();
    }

    /// `n` bytes counted until the returned guard is dropped: memory a step holds beside the batches for
    /// a while (a Parquet file's columns while it is encoded), released however the step ends, a
    /// dropped future included.
    pub fn hold(self: &Arc<Self>, n: usize) -> Held {
        self.add(n);
        Held(self.clone(), n)
    }

    /// Resolves at the next release (create it before checking the count, so no release is missed).
    pub fn freed(&self) -> Notified<'_> {
        self.freed.notified()
    }

    /// An emptied run to decode into, if one was given back: its pages are the process's already, where
    /// a new run's buffers fault in page by page as they fill (the allocator returns freed memory to
    /// the system at once), a cost paid for every byte read.
    pub fn spare_run(&self) -> Option<Records> {
        self.spares.lock().ok()?.pop()
    }

    /// Keeps an emptied run for `spare_run` while the spares' room stays under `SPARE_ROOM` and a
    /// quarter of the bound.
    pub fn give_back(&self, mut run: Records) {
        run.clear();
        let Ok(mut spares) = self.spares.lock() else {
            return;
        };
        let most = SPARE_ROOM.min(usize::try_from(self.bound() / 4).unwrap_or(usize::MAX));
        if spares.iter().map(Records::room).sum::<usize>() + run.room() <= most {
            spares.push(run);
        }
    }

    fn report(&self, now: u64) {
        if let Some(g) = &self.gauge {
            g.set(now as i64);
        }
    }
}

/// Bytes counted in a budget while this lives (`Inflight::hold`).
#[derive(Debug)]
pub struct Held(Arc<Inflight>, usize);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_count_until_their_guard_is_dropped() {
        let inflight = Arc::new(Inflight::bounded(100));
        inflight.add(50);
        let held = inflight.hold(60);
        assert_eq!(inflight.bytes(), 110);
        assert!(inflight.over(), "the reader waits while they are held");
        drop(held);
        assert_eq!(inflight.bytes(), 50);
        assert!(!inflight.over());
    }

    #[test]
    fn runs_given_back_are_handed_out_again_empty_within_their_room() {
        let inflight = Inflight::default();
        assert!(inflight.spare_run().is_none());
        let shape = crate::record::Shape {
            key: 0,
            line: 0,
            row: 1 << 20,
            datum: 0,
        };
        let mut run = Records::with_room(3, shape);
        run.extend(Records::of((0..3).map(|o| (o, o))));
        assert!(!run.is_empty());
        inflight.give_back(run);
        let again = inflight.spare_run().unwrap_or_default();
        assert!(again.is_empty() && again.bytes() == 0, "handed out empty");
        assert!(again.room() >= 3 << 20, "with its room");
        inflight.give_back(again);
        inflight.give_back(Records::with_room(4, shape));
        inflight.give_back(Records::with_room(2, shape));
        let rooms: Vec<usize> = std::iter::from_fn(|| inflight.spare_run()).map(|r| r.room() >> 20).collect();
        assert_eq!(rooms, [4, 3], "past 8 MiB of room together a run is dropped");
        let share = Inflight::bounded(16 << 20);
        share.give_back(Records::with_room(3, shape));
        share.give_back(Records::with_room(2, shape));
        let rooms: Vec<usize> = std::iter::from_fn(|| share.spare_run()).map(|r| r.room() >> 20).collect();
        assert_eq!(rooms, [3], "a budget's share keeps a quarter of it at most");
    }

    #[test]
    fn pressure_starts_at_three_quarters_and_reading_stops_at_the_bound() {
        let inflight = Inflight::bounded(100);
        inflight.add(74);
        assert!(!inflight.pressed());
        inflight.add(1);
        assert!(inflight.pressed() && !inflight.over());
        inflight.add(25);
        assert!(inflight.over());
        inflight.release(10);
        assert_eq!(inflight.bytes(), 90);
        inflight.release(1000);
        assert_eq!(inflight.bytes(), 0, "releasing too much saturates");
        inflight.add(60);
        inflight.set_bound(50);
        assert!(inflight.over(), "a smaller share stops the reader until it is back under");
        inflight.set_bound(200);
        assert!(!inflight.over() && !inflight.pressed());
    }
}
