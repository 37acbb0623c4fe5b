//! The S3 writer against a second S3 server, versitygw (maintained, Apache-2.0, a Go module pinned in
//! scripts/stack.sh), beside MinIO: the calls the pipeline makes, byte for byte, the atomic
//! conditional create the exactly-once object keys rest on, and one whole pipeline run.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::secure::Secure;
use common::{Names, NrtProcess};
use nrt_pipeline::config::{Secret, ServicesConfig};
use nrt_pipeline::s3::{ObjectStore, PutOutcome};

fn versitygw(base: &ServicesConfig, secure: &Secure) -> ServicesConfig {
    let mut cfg = base.clone();
    cfg.s3.endpoint = secure.get("NRT_TEST_S3_ALT_URL").to_owned();
    cfg.s3.access_key = Secret::new(secure.get("NRT_TEST_S3_ALT_ACCESS_KEY"));
    cfg.s3.secret_key = Secret::new(secure.get("NRT_TEST_S3_ALT_SECRET_KEY"));
    cfg
}

#[tokio::test]
async fn round_trip_and_conditional_create() {
    let secure = Secure::load();
    let mut cfg = versitygw(&common::services(), &secure);
    cfg.s3.bucket = common::unique("nrt-test-");
    let store = ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let probe = store
        .probe()
        .await
        .unwrap_or_else(|e| panic!("versitygw at {}: {e}: {}", cfg.s3.endpoint, common::START_HINT));
    assert!(probe.contains("absent"), "{probe}");
    store.ensure_bucket().await.unwrap_or_else(|e| panic!("{e}"));
    store.ensure_bucket().await.unwrap_or_else(|e| panic!("{e}"));

    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let prefix = "dt=2026-12-05/hour=23/";
    let objects = [
        (
            format!("{prefix}events_20261205_230000_p0_o0.jsonl"),
            b"{\"a\":1}\n".to_vec(),
        ),
        (format!("{prefix}events_20261205_230001_p1_o7.jsonl"), binary),
        (format!("{prefix}empty.jsonl"), Vec::new()),
    ];
    common::s3_round_trip(&store, &objects, prefix).await;

    // The first writer of a key wins; the second is told, with the winner's metadata.
    let key = format!("{prefix}conditional.jsonl");
    let meta = |owner: &str| BTreeMap::from([("owner", owner.to_owned())]);
    let first = store
        .put_if_absent(&key, b"first\n".to_vec(), "application/x-ndjson", &meta("a"))
        .await;
    assert_eq!(first.ok(), Some(PutOutcome::Created));
    let second = store
        .put_if_absent(&key, b"second\n".to_vec(), "application/x-ndjson", &meta("b"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match second {
        PutOutcome::Exists(m) => assert_eq!(m.get("owner").map(String::as_str), Some("a")),
        other => panic!("the second create must find the first: {other:?}"),
    }
    let got = store
        .get(&key, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, b"first\n");

    let mut bad = cfg.s3.clone();
    bad.secret_key = Secret::new("not-the-versitygw-secret");
    let err = ObjectStore::new(&bad)
        .unwrap_or_else(|e| panic!("{e}"))
        .put("k", b"v".to_vec(), "text/plain")
        .await
        .expect_err("a wrong secret must be refused");
    assert!(
        !err.is_transient() && !err.to_string().contains("not-the-versitygw-secret"),
        "{err}"
    );
}

const SEED: u64 = 7070;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 5_000;

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_lands_every_event_once_on_versitygw() {
    let base = common::services();
    common::require_all(&base, &common::PIPELINE_SERVICES).await;
    let secure = Secure::load();
    let cfg = versitygw(&base, &secure);
    let names = Names::new("versitygw");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.extend([
        ("NRT_S3_ENDPOINT", cfg.s3.endpoint.as_str()),
        ("NRT_S3_ACCESS_KEY", cfg.s3.access_key.expose()),
        ("NRT_S3_SECRET_KEY", cfg.s3.secret_key.expose()),
    ]);
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;
    assert_eq!(pipeline.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
}
