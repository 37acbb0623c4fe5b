//! Bad input from the events API: HTTP 500s, invalid JSON, events missing fields, slow answers and
//! answers that never come in time. The Poller keeps running, counts each failure by kind exactly, backs
//! off, and recovers: every event gets published.
#![cfg(feature = "integration")]

use crate::common;

use common::{Names, NrtProcess, Service};

const EVENTS: u64 = 3_000;

async fn wait_count(admin: &str, sample: &str, want: f64) {
    common::wait_for(60, sample, || async {
        (common::metric(admin, sample).await? == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn poller_survives_and_counts_api_failures() {
    let cfg = common::services();
    common::require_all(&cfg, &[Service::Kafka, Service::Registry]).await;
    let names = Names::new("faults");
    let mock = common::spawn_mock(9, EVENTS, 1_767_225_600_000);
    // Slow but within the 1 s timeout: waited for, not an error.
    common::arm_chaos(&mock.url, "slow", 3, 600).await;
    let mut env = names.env(&mock.url);
    env.push(("NRT_POLL_BATCH", "100"));
    env.push(("NRT_POLL_TIMEOUT_MS", "1000"));
    let mut producer = NrtProcess::spawn(&["run", "--role", "producer"], &env);
    let admin = producer.url.clone();
    common::wait_for(30, "three slow answers polled", || async {
        (common::metric(&admin, "nrt_events_polled_total").await? >= 300.0).then_some(())
    })
    .await;
    assert_eq!(
        common::metric(&admin, r#"nrt_poll_errors_total{kind="timeout"}"#).await,
        Some(0.0),
        "a slow answer within the timeout counted as a timeout"
    );
    common::arm_chaos(&mock.url, "error", 4, 0).await;

    wait_count(&admin, r#"nrt_poll_errors_total{kind="http_status"}"#, 4.0).await;
    common::wait_for(30, "polling to recover after the 500s", || async {
        (common::metric(&admin, "nrt_events_published_total").await? > 0.0).then_some(())
    })
    .await;
    common::arm_chaos(&mock.url, "bad_json", 3, 0).await;
    wait_count(&admin, r#"nrt_poll_errors_total{kind="bad_json"}"#, 3.0).await;
    common::arm_chaos(&mock.url, "missing_field", 2, 0).await;
    wait_count(&admin, r#"nrt_poll_errors_total{kind="invalid_batch"}"#, 2.0).await;
    // Slower than the 1 s timeout: counted as timeouts, retried, nothing lost.
    common::arm_chaos(&mock.url, "hang", 2, 1_500).await;
    wait_count(&admin, r#"nrt_poll_errors_total{kind="timeout"}"#, 2.0).await;
    wait_count(&admin, "nrt_events_published_total", EVENTS as f64).await;

    assert!(producer.is_running(), "the producer crashed");
    assert_eq!(
        common::metric(&admin, r#"nrt_poll_errors_total{kind="invalid_event"}"#).await,
        Some(2.0)
    );
    assert_eq!(
        common::metric(&admin, r#"nrt_poll_errors_total{kind="http_status"}"#).await,
        Some(4.0)
    );
    assert_eq!(
        common::metric(&admin, r#"nrt_poll_errors_total{kind="bad_json"}"#).await,
        Some(3.0)
    );
    assert_eq!(
        common::metric(&admin, "nrt_events_polled_total").await,
        Some(EVENTS as f64)
    );
    assert_eq!(
        common::metric(&admin, r#"nrt_poll_errors_total{kind="timeout"}"#).await,
        Some(2.0)
    );
    let health = common::get_json(&format!("{}/health", mock.url)).await;
    assert_eq!(health["faults"], 11);
    let actors = common::get_json(&format!("{admin}/actors")).await;
    assert_eq!(actors["poller"]["state"], "running", "{actors}");
    assert_eq!(actors["poller"]["restarts"], 0, "{actors}");
    assert_eq!(producer.terminate(), Some(0));
    println!(
        "fault 8 events API: 3 slow answers (600 ms) waited for, 4 HTTP 500, 3 bad JSON, 2 batches missing \
         fields, 2 stalls past the 1 s timeout: counted by kind, no restart, {EVENTS}/{EVENTS} events published"
    );
}
