//! reqwest against the real Prometheus: it runs our scrape config, and scrapes MinIO successfully.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

async fn targets(http: &reqwest::Client, base: &str) -> BTreeMap<String, String> {
    let url = format!("{base}/api/v1/targets");
    let body: Value = http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
    assert_eq!(body["status"], "success", "{body}");
    let active = body["data"]["activeTargets"]
        .as_array()
        .unwrap_or_else(|| panic!("no activeTargets in {body}"));
    active
        .iter()
        .map(|t| {
            let job = t["labels"]["job"].as_str().unwrap_or_default().to_owned();
            (job, t["health"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn scrape_targets_are_configured_and_minio_is_up() {
    let cfg = common::services();
    common::require(common::Service::Prometheus, &cfg).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let base = cfg.prometheus.url.trim_end_matches('/');

    // Right after start-up a target is "unknown" until its first scrape (every 5 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let jobs = loop {
        let jobs = targets(&http, base).await;
        let settled = ["prometheus", "minio"]
            .iter()
            .all(|j| jobs.get(*j).map(String::as_str) == Some("up"));
        if settled || Instant::now() > deadline {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let names: Vec<&str> = jobs.keys().map(String::as_str).collect();
    assert_eq!(names, ["minio", "nrt", "prometheus"], "scrape jobs");
    assert_eq!(jobs["prometheus"], "up");
    assert_eq!(
        jobs["minio"], "up",
        "MinIO's /minio/v2/metrics/cluster is not scraped successfully"
    );

    // And the scraped samples are queryable.
    let url = format!("{base}/api/v1/query?query=up%7Bjob%3D%22minio%22%7D");
    let body: Value = http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("not JSON: {e}"));
    assert_eq!(body["data"]["result"][0]["value"][1], "1", "{body}");
}
