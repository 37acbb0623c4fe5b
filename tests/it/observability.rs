//! Observability against real Prometheus (the one scripts/stack.sh runs, scraping 127.0.0.1:9180):
//! promtool accepts the configs and rules; after an end-to-end run every dashboard query returns data,
//! every alert expression evaluates, and no query names a metric that does not exist.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{Names, NrtProcess, Service};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("promtool (Debian's prometheus package) is not runnable: {e}"));
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_configs_and_rules() {
    let alerts = format!("{ROOT}/prometheus/alerts.yml");
    promtool(&["check", "rules", &alerts]);
    let dir = std::env::temp_dir().join(common::unique("nrt-promtool-"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let copy = |from: &str, to: &str, replace: (&str, &str)| {
        let text =
            std::fs::read_to_string(format!("{ROOT}/{from}")).unwrap_or_else(|e| panic!("{from}: {e}"));
        std::fs::write(dir.join(to), text.replace(replace.0, replace.1)).unwrap_or_else(|e| panic!("{e}"));
    };
    let rules_path = dir.join("alerts.yml");
    let rules = rules_path.to_string_lossy();
    copy("prometheus/alerts.yml", "alerts.yml", ("", ""));
    copy(
        "prometheus/prometheus.yml",
        "compose.yml",
        ("/etc/prometheus/alerts.yml", &rules),
    );
    copy("scripts/stack/prometheus.yml", "native.yml", ("", ""));
    for config in ["compose.yml", "native.yml"] {
        promtool(&["check", "config", &dir.join(config).to_string_lossy()]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every PromQL expression of the dashboards: (dashboard, panel title, expr).
fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let dir = Path::new(ROOT).join("dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "dashboards: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dash: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let variables: Vec<&str> = dash["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        if text.contains("nrt_") {
            assert_eq!(
                variables,
                ["pipeline"],
                "{}: pipelines are chosen by `$pipeline`",
                file.display()
            );
        }
        let title = dash["title"].as_str().unwrap_or_default().to_owned();
        for panel in dash["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                // The dashboards' `$pipeline` variable as Grafana sends it with "All" chosen (`allValue`),
                // which also matches a process whose metrics carry no pipeline label (this test's).
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_default()
                    .replace("$pipeline", ".*");
                out.push((
                    title.clone(),
                    panel["title"].as_str().unwrap_or_default().to_owned(),
                    expr,
                ));
            }
        }
    }
    out
}

fn alert_queries() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(format!("{ROOT}/prometheus/alerts.yml")).unwrap_or_else(|e| panic!("{e}"));
    // The rules file is flat YAML: an `- alert:` line, then its `expr:` line.
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- alert:") {
            name = Some(n.trim().to_owned());
        } else if let Some(expr) = line.strip_prefix("expr:") {
            let n = name
                .take()
                .unwrap_or_else(|| panic!("expr without alert: {line}"));
            out.push((n, expr.trim().to_owned()));
        }
    }
    assert_eq!(out.len(), 10, "alert rules: {out:?}");
    out
}

/// Metric names an expression mentions (ours, MinIO's, process and `up`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            let known = ["nrt_", "minio_", "process_"].iter().any(|p| word.starts_with(p)) || word == "up";
            if known && c != '"' {
                names.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

async fn query(http: &reqwest::Client, base: &str, expr: &str) -> Value {
    let resp = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("query {expr}: {e}"));
    resp.json()
        .await
        .unwrap_or_else(|e| panic!("query {expr}: not JSON: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_and_alert_query_works_on_real_prometheus() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    common::require(Service::Prometheus, &cfg).await;
    let prom = cfg.prometheus.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();

    // A live process where Prometheus scrapes it (the admin API on the default 127.0.0.1:9180), with
    // two pipelines of a pipelines file: every panel must show each of them apart.
    let pipelines = [Names::new("observe-a"), Names::new("observe-b")];
    let mocks = [0, 1].map(|_| {
        NrtProcess::spawn(
            &["mock-api", "--listen", "127.0.0.1:0", "--limit", "100000"],
            &[("RUST_LOG", "warn")],
        )
    });
    let mut text = String::new();
    for (names, mock) in pipelines.iter().zip(&mocks) {
        text.push_str(&format!(
            "[[pipeline]]\nname = \"{}\"\ntopic = \"{}\"\ngroup_id = \"{}\"\ns3_prefix = \"{}\"\n\
             clickhouse_table = \"{}\"\nmock_api_url = \"{}\"\npoll_batch = 500\nflush_interval_ms = 300\n\n",
            names.table, names.topic, names.group, names.prefix, names.table, mock.url
        ));
    }
    let file = std::env::temp_dir().join(format!("{}.toml", common::unique("nrt-observe-")));
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_string_lossy().into_owned();
    let env = [
        ("NRT_CONFIG", path.as_str()),
        ("NRT_CLICKHOUSE_DATABASE", common::TEST_DATABASE),
        ("NRT_ADMIN_ADDR", "127.0.0.1:9180"),
        ("RUST_LOG", "warn"),
    ];
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    let names: Vec<String> = pipelines.iter().map(|n| n.table.clone()).collect();

    // Prometheus must be scraping this very process (not an earlier run's samples of the same job)...
    let ours = common::wait_for(30, "the pipeline's process start time", || async {
        common::metric(&pipeline.url, "process_start_time_seconds").await
    })
    .await;
    common::wait_for(60, "Prometheus to scrape this pipeline", || async {
        let v = query(&http, &prom, r#"process_start_time_seconds{job="nrt"}"#).await;
        let seen: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        ((seen - ours).abs() < 1.0).then_some(())
    })
    .await;
    // ...and for enough scrapes (every 5 s) of it flowing for rate() and histogram_quantile() to answer.
    tokio::time::sleep(std::time::Duration::from_secs(16)).await;
    common::wait_for(120, "Prometheus to scrape a flowing pipeline", || async {
        let v = query(
            &http,
            &prom,
            r#"count_over_time(nrt_events_written_total{job="nrt",sink="clickhouse"}[1m])"#,
        )
        .await;
        let scrapes: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        let lag = query(&http, &prom, "nrt_consumer_lag").await;
        let lag_known = lag["data"]["result"].as_array().is_some_and(|r| !r.is_empty());
        let fresh = query(&http, &prom, "rate(nrt_freshness_seconds_count[1m])").await;
        let fresh_rate: f64 = fresh["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (scrapes >= 4.0 && lag_known && fresh_rate > 0.0).then_some(())
    })
    .await;

    let existing: BTreeSet<String> = {
        let v: Value = http
            .get(format!("{prom}/api/v1/label/__name__/values"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    };
    let mut failures = Vec::new();
    let panels = dashboard_queries();
    for (dash, panel, expr) in &panels {
        for missing in metric_names(expr).difference(&existing) {
            failures.push(format!(
                "{dash} / {panel}: metric {missing} does not exist ({expr})"
            ));
        }
        let v = query(&http, &prom, expr).await;
        if v["status"] != "success" {
            failures.push(format!("{dash} / {panel}: {expr}: {}", v["error"]));
        } else if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            failures.push(format!("{dash} / {panel}: no data for {expr}"));
        } else if expr.contains("by (pipeline") {
            let shown: BTreeSet<&str> = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["metric"]["pipeline"].as_str())
                .collect();
            if names.iter().any(|n| !shown.contains(n.as_str())) {
                failures.push(format!(
                    "{dash} / {panel}: pipelines {shown:?}, not each of {names:?}: {expr}"
                ));
            }
        }
    }
    let alerts = alert_queries();
    for (alert, expr) in &alerts {
        for missing in metric_names(expr).difference(&existing) {
            failures.push(format!("alert {alert}: metric {missing} does not exist"));
        }
        let v = query(&http, &prom, expr).await;
        if v["status"] != "success" {
            failures.push(format!("alert {alert}: {expr}: {}", v["error"]));
        }
    }
    // Prometheus loaded the same rules and evaluates them without error.
    let rules = common::get_json(&format!("{prom}/api/v1/rules")).await;
    let loaded: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(loaded.len(), alerts.len(), "rules loaded by Prometheus: {rules}");
    for r in loaded {
        if r["health"] == "err" {
            failures.push(format!(
                "rule {} fails in Prometheus: {}",
                r["name"], r["lastError"]
            ));
        }
    }
    let p50 = query(
        &http,
        &prom,
        "histogram_quantile(0.5, sum by (le) (rate(nrt_freshness_seconds_bucket[5m])))",
    )
    .await;
    let p99 = query(
        &http,
        &prom,
        "histogram_quantile(0.99, sum by (le) (rate(nrt_freshness_seconds_bucket[5m])))",
    )
    .await;
    println!(
        "observability: {} panel queries and {} alert expressions proven on real Prometheus; freshness p50 {} s, p99 {} s",
        panels.len(),
        alerts.len(),
        p50["data"]["result"][0]["value"][1],
        p99["data"]["result"][0]["value"][1]
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(pipeline.terminate(), Some(0));
    let _ = std::fs::remove_file(&file);
}
