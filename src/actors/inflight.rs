//! The consumer's in-flight budget: bytes read from Kafka and not yet committed (or dropped). The
//! Batcher counts what it holds (it adds a run when it accepts it, releases a batch when it is
//! committed, abandoned or dropped); the reader pauses its partitions while the count is over the bound.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Inflight {
    bytes: AtomicU64,
    freed: Notify,
    gauge: Option<prometheus::IntGauge>,
}

impl Inflight {
    /// A budget reported in `gauge` (`nrt_inflight_bytes`).
    pub fn new(gauge: prometheus::IntGauge) -> Self {
        Inflight {
            gauge: Some(gauge),
            ..Inflight::default()
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
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

    /// Resolves at the next release (create it before checking the count, so no release is missed).
    pub fn freed(&self) -> Notified<'_> {
        self.freed.notified()
    }

    fn report(&self, now: u64) {
        if let Some(g) = &self.gauge {
            g.set(now as i64);
        }
    }
}
