//! The last ten minutes of the pipeline's counters, sampled every 5 s, so the status page can show
//! events/s per stage and latency quantiles over a window without asking Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::core::Collector;

use crate::log_summary::Totals;
use crate::metrics::PipelineMetrics;

pub const EVERY: Duration = Duration::from_secs(5);
const KEEP: usize = 121;

/// A histogram's cumulative buckets: (upper bound, count at or below it), `+Inf` last.
pub type Buckets = Vec<(f64, u64)>;

#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub totals: Totals,
    pub freshness: Buckets,
    /// Per sink: time to write one batch.
    pub flush: BTreeMap<String, Buckets>,
}

impl Sample {
    pub fn read(m: &PipelineMetrics) -> Self {
        let mut flush = BTreeMap::new();
        for family in m.flush_seconds.collect() {
            for metric in family.get_metric() {
                let sink = metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "sink")
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default();
                flush.insert(sink, buckets(metric.get_histogram()));
            }
        }
        let freshness = m
            .freshness_seconds
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|metric| buckets(metric.get_histogram()))
            .next()
            .unwrap_or_default();
        Sample {
            at: Instant::now(),
            totals: Totals::read(m),
            freshness,
            flush,
        }
    }
}

fn buckets(h: &prometheus::proto::Histogram) -> Buckets {
    let mut out: Buckets = h
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    out.push((f64::INFINITY, h.get_sample_count()));
    out
}

#[derive(Debug, Default)]
pub struct History(Mutex<VecDeque<Sample>>);

impl History {
    pub fn record(&self, sample: Sample) {
        let mut samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back(sample);
        while samples.len() > KEEP {
            samples.pop_front();
        }
    }

    /// Oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        samples.iter().cloned().collect()
    }
}

/// Samples the metrics into `history` every `EVERY` while the System runs.
pub fn spawn(metrics: PipelineMetrics, history: std::sync::Arc<History>) {
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        loop {
            ticks.tick().await;
            history.record(Sample::read(&metrics));
        }
    });
}

/// One stage of the pipeline as the page shows it: a name and how to read its count from `Totals`.
pub struct Stage {
    pub name: &'static str,
    pub count: fn(&Totals) -> u64,
}

pub const STAGES: [Stage; 5] = [
    Stage { name: "polled", count: |t| t.polled },
    Stage { name: "published", count: |t| t.published },
    Stage { name: "consumed", count: |t| t.consumed },
    Stage { name: "written to ClickHouse", count: |t| t.written_clickhouse },
    Stage { name: "written to MinIO", count: |t| t.written_minio },
];

/// Events/s of `stage` between consecutive samples: (seconds before the newest sample, rate).
pub fn series(samples: &[Sample], stage: &Stage) -> Vec<(f64, f64)> {
    let Some(newest) = samples.last() else { return Vec::new() };
    samples
        .windows(2)
        .map(|w| {
            let secs = w[1].at.duration_since(w[0].at).as_secs_f64().max(0.001);
            let n = (stage.count)(&w[1].totals).saturating_sub((stage.count)(&w[0].totals));
            (newest.at.duration_since(w[1].at).as_secs_f64(), n as f64 / secs)
        })
        .collect()
}

/// Events/s of `stage` over the last `window` (or as much of it as the samples cover).
pub fn rate(samples: &[Sample], stage: &Stage, window: Duration) -> Option<f64> {
    let newest = samples.last()?;
    let oldest = samples
        .iter()
        .find(|s| newest.at.duration_since(s.at) <= window)
        .filter(|s| s.at < newest.at)?;
    let secs = newest.at.duration_since(oldest.at).as_secs_f64();
    let n = (stage.count)(&newest.totals).saturating_sub((stage.count)(&oldest.totals));
    Some(n as f64 / secs)
}

/// The `q` quantile of what a histogram observed between `then` and `now`, as Prometheus's
/// `histogram_quantile` estimates it (linear within a bucket); `None` when nothing was observed, and
/// infinity when it lies past the highest finite bucket (the page says so rather than a made-up value).
pub fn quantile(now: &Buckets, then: Option<&Buckets>, q: f64) -> Option<f64> {
    let diff: Buckets = now
        .iter()
        .enumerate()
        .map(|(i, (le, n))| {
            let before = then.and_then(|t| t.get(i)).map_or(0, |(_, c)| *c);
            (*le, n.saturating_sub(before))
        })
        .collect();
    let total = diff.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, count) in &diff {
        if count as f64 >= rank {
            if le.is_infinite() {
                return Some(f64::INFINITY);
            }
            let in_bucket = (count - lower.1) as f64;
            let into = if in_bucket > 0.0 { (rank - lower.1 as f64) / in_bucket } else { 1.0 };
            return Some(lower.0 + (le - lower.0) * into);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, consumed: u64) -> Sample {
        Sample {
            at,
            totals: Totals { consumed, ..Totals::default() },
            freshness: Vec::new(),
            flush: BTreeMap::new(),
        }
    }

    #[test]
    fn rates_come_from_the_samples_inside_the_window() {
        let t0 = Instant::now();
        let s: Vec<Sample> = (0..13).map(|i| sample(t0 + EVERY * i, u64::from(i) * 500)).collect();
        let consumed = &STAGES[2];
        assert_eq!(rate(&s, consumed, Duration::from_secs(60)), Some(100.0));
        assert_eq!(rate(&s[..1], consumed, Duration::from_secs(60)), None, "one sample has no rate");
        let points = series(&s, consumed);
        assert_eq!(points.len(), 12);
        assert_eq!(points[11], (0.0, 100.0));
        assert_eq!(points[0].0, 55.0);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket_as_prometheus_does() {
        let now = vec![(0.5, 50), (1.0, 90), (2.0, 100), (f64::INFINITY, 100)];
        assert_eq!(quantile(&now, None, 0.5), Some(0.5));
        let p99 = quantile(&now, None, 0.99).unwrap_or_default();
        assert!((p99 - 1.9).abs() < 1e-9, "{p99}");
        // Over a window: only what was observed since `then`.
        let then = vec![(0.5, 50), (1.0, 50), (2.0, 50), (f64::INFINITY, 50)];
        let p50 = quantile(&now, Some(&then), 0.5).unwrap_or_default();
        assert!((p50 - 0.5 - 0.5 * 25.0 / 40.0).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(&then, Some(&then), 0.5), None, "nothing observed");
        let tail = vec![(1.0, 1), (f64::INFINITY, 10)];
        assert_eq!(quantile(&tail, None, 0.99), Some(f64::INFINITY), "past the highest finite bucket");
    }
}
