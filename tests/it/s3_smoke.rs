//! rusoto_s3 (through `ObjectStore`, the project's only S3 door) against the real MinIO, path-style.
#![cfg(feature = "integration")]

use crate::common;

use std::time::Duration;

use nrt_pipeline::config::Secret;
use nrt_pipeline::s3::ObjectStore;

#[tokio::test]
async fn create_bucket_put_get_list_round_trip() {
    let mut cfg = common::services();
    common::require(common::Service::Minio, &cfg).await;
    cfg.s3.bucket = common::unique("nrt-test-");
    let store = ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    store.ensure_bucket().await.unwrap_or_else(|e| panic!("{e}"));
    // Idempotent: the writer calls it at every start.
    store.ensure_bucket().await.unwrap_or_else(|e| panic!("{e}"));

    let prefix = "dt=2026-11-27/hour=09/";
    // Every byte value, to prove bodies are passed through untouched.
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let objects = [
        (
            format!("{prefix}events_20261127_090000_p0_o0.jsonl"),
            b"{\"a\":1}\n{\"a\":2}\n".to_vec(),
        ),
        (format!("{prefix}events_20261127_090001_p1_o42.jsonl"), binary),
        (format!("{prefix}empty.jsonl"), Vec::new()),
        ("dt=2026-11-27/hour=10/other.jsonl".to_owned(), b"x".to_vec()),
    ];
    common::s3_round_trip(&store, &objects, prefix).await;
    assert_eq!(store.list("dt=").await.map(|l| l.len()).ok(), Some(4));

    // Overwriting a key replaces the object: what makes a replayed batch land once.
    store
        .put(&objects[0].0, b"replaced\n".to_vec(), "application/x-ndjson")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = store
        .get(&objects[0].0, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, b"replaced\n");
    assert_eq!(store.list("dt=").await.map(|l| l.len()).ok(), Some(4));
}

#[tokio::test]
async fn refusals_are_permanent_errors() {
    let mut cfg = common::services();
    common::require(common::Service::Minio, &cfg).await;
    cfg.s3.bucket = common::unique("nrt-test-");
    let store = ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    store.ensure_bucket().await.unwrap_or_else(|e| panic!("{e}"));

    let missing = store.get("no/such/key", Duration::from_secs(10)).await;
    let err = missing.expect_err("a missing key must be an error");
    assert!(!err.is_transient(), "404 must not be retried: {err}");

    let mut bad = cfg.s3.clone();
    bad.secret_key = Secret::new("definitely-not-the-password");
    let store = ObjectStore::new(&bad).unwrap_or_else(|e| panic!("{e}"));
    let err = store
        .put("k", b"v".to_vec(), "text/plain")
        .await
        .expect_err("a wrong secret key must be refused");
    assert!(!err.is_transient(), "403 must not be retried: {err}");
    assert!(
        !err.to_string().contains("definitely-not-the-password"),
        "secret leaked: {err}"
    );
}
