//! One log line a minute about a running pipeline, instead of lines per batch: what moved since the last
//! line, what is waiting, what went wrong. Read from the metrics, so it says what `/metrics` says.

use std::time::Duration;

use crate::metrics::PipelineMetrics;

/// The counters and gauges a summary line is made of, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub polled: u64,
    pub published: u64,
    pub consumed: u64,
    pub written_clickhouse: u64,
    pub written_minio: u64,
    pub batches: u64,
    pub dead_letters: u64,
    pub errors: u64,
    pub restarts: u64,
    pub lag: i64,
    pub inflight_bytes: i64,
}

impl Totals {
    pub fn read(m: &PipelineMetrics) -> Self {
        let sum = |v: &prometheus::IntCounterVec| -> u64 {
            use prometheus::core::Collector;
            v.collect()
                .iter()
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_counter().value() as u64)
                .sum()
        };
        let lag: i64 = {
            use prometheus::core::Collector;
            m.consumer_lag
                .collect()
                .iter()
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_gauge().value().max(0.0) as i64)
                .sum()
        };
        Totals {
            polled: m.events_polled.get(),
            published: m.events_published.get(),
            consumed: m.events_consumed.get(),
            written_clickhouse: m.events_written.with_label_values(&["clickhouse"]).get(),
            written_minio: m.events_written.with_label_values(&["minio"]).get(),
            batches: m.batches_committed.get(),
            dead_letters: m.dead_letters.get(),
            errors: sum(&m.poll_errors) + m.publish_errors.get() + sum(&m.sink_errors),
            restarts: sum(&m.actor_restarts),
            lag,
            inflight_bytes: m.inflight_bytes.get(),
        }
    }
}

/// The line for the `secs` seconds from `before` to `now`; `None` when nothing moved and nothing waits
/// (an idle pipeline stays quiet after saying once that it is idle).
pub fn line(before: &Totals, now: &Totals, secs: f64) -> Option<String> {
    let d = |a: u64, b: u64| b.saturating_sub(a);
    let rate = |n: u64| n as f64 / secs.max(0.001);
    let moved = now.polled != before.polled
        || now.published != before.published
        || now.consumed != before.consumed
        || now.batches != before.batches
        || now.errors != before.errors
        || now.restarts != before.restarts;
    let waiting = now.lag > 0 || now.inflight_bytes > 0;
    if !moved && !waiting {
        return None;
    }
    let mut parts = Vec::new();
    if now.polled > 0 || now.published > 0 {
        let published = d(before.published, now.published);
        parts.push(format!(
            "published {published} ({:.0}/s), polled {}",
            rate(published),
            d(before.polled, now.polled)
        ));
    }
    if now.consumed > 0 || now.batches > 0 || now.lag > 0 {
        let consumed = d(before.consumed, now.consumed);
        parts.push(format!(
            "consumed {consumed} ({:.0}/s), written clickhouse {} minio {}, {} batches committed, lag {}",
            rate(consumed),
            d(before.written_clickhouse, now.written_clickhouse),
            d(before.written_minio, now.written_minio),
            d(before.batches, now.batches),
            now.lag
        ));
    }
    for (what, n) in [
        ("dead letters", d(before.dead_letters, now.dead_letters)),
        ("errors (retried)", d(before.errors, now.errors)),
        ("actor restarts", d(before.restarts, now.restarts)),
    ] {
        if n > 0 {
            parts.push(format!("{what} {n}"));
        }
    }
    Some(format!("last {secs:.0} s: {}", parts.join("; ")))
}

/// Logs a summary every `every` while the System runs (0: never); `who` names the pipeline in a
/// process of several (`nrt run` alone otherwise).
pub fn spawn(metrics: PipelineMetrics, every: Duration, who: String) {
    if every.is_zero() {
        return;
    }
    actix::spawn(async move {
        let mut before = Totals::read(&metrics);
        let mut idle_said = false;
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let now = Totals::read(&metrics);
            match line(&before, &now, every.as_secs_f64()) {
                Some(l) => {
                    log::info!("{who}: {l}");
                    idle_said = false;
                }
                None if !idle_said => {
                    log::info!("{who}: idle (nothing polled, read or waiting)");
                    idle_said = true;
                }
                None => {}
            }
            before = now;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(consumed: u64, batches: u64, lag: i64) -> Totals {
        Totals {
            consumed,
            written_clickhouse: consumed,
            written_minio: consumed,
            batches,
            lag,
            ..Totals::default()
        }
    }

    #[test]
    fn a_consumer_line_counts_what_moved_since_the_last_one() {
        let l = line(&consumer(1_000, 2, 0), &consumer(61_000, 5, 40), 60.0);
        assert_eq!(
            l.as_deref(),
            Some(
                "last 60 s: consumed 60000 (1000/s), written clickhouse 60000 minio 60000, 3 batches \
                 committed, lag 40"
            )
        );
    }

    #[test]
    fn problems_are_named_and_a_producer_says_what_it_published() {
        let before = Totals { polled: 10, published: 10, ..Totals::default() };
        let now = Totals { polled: 130, published: 110, dead_letters: 0, errors: 3, restarts: 1, ..before.clone() };
        assert_eq!(
            line(&before, &now, 10.0).as_deref(),
            Some("last 10 s: published 100 (10/s), polled 120; errors (retried) 3; actor restarts 1")
        );
    }

    #[test]
    fn an_idle_pipeline_has_nothing_to_say_unless_data_waits() {
        let t = consumer(500, 1, 0);
        assert_eq!(line(&t, &t, 60.0), None);
        let waiting = Totals { inflight_bytes: 4096, ..t.clone() };
        assert!(line(&t, &waiting, 60.0).is_some(), "held data is worth a line");
    }
}
