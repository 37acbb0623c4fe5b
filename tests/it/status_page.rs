//! The status pages in a real browser (Debian's chromium, headless; scripts/test.sh installs it): the
//! pipeline's page at the admin API's `/` with a live pipeline on the real services, and the registry's
//! page. Every number the page shows as a total (`data-metric`) equals the same sample in `/metrics`;
//! no console error; screenshots under `.stack/`.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Names, NrtProcess, RegistryProcess};

const SEED: u64 = 77;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 30_000;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn chromium() -> PathBuf {
    let path = std::env::var("NRT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&path).exists(),
        "no browser at {path}: scripts/test.sh installs Debian's chromium (apt-get install chromium), \
         or set NRT_CHROMIUM"
    );
    PathBuf::from(path)
}

/// Headless chromium on `url`: the DOM after load, and every console message it logged.
fn browse(url: &str, screenshot: &Path) -> (String, Vec<String>) {
    let profile = std::env::temp_dir().join(common::unique("nrt-chromium-"));
    let run = |extra: &[&str]| {
        let out = Command::new(chromium())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .args(["--enable-logging=stderr", "--v=0", "--window-size=1280,1900"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap_or_else(|e| panic!("cannot run chromium: {e}"));
        assert!(
            out.status.success(),
            "chromium {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let dom = run(&["--dump-dom"]);
    let shot = run(&[&format!("--screenshot={}", screenshot.display())]);
    let _ = std::fs::remove_dir_all(&profile);
    let console: Vec<String> = [&dom.stderr, &shot.stderr]
        .iter()
        .flat_map(|e| {
            String::from_utf8_lossy(e)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    let size = std::fs::metadata(screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "{} is {size} bytes: no screenshot",
        screenshot.display()
    );
    (String::from_utf8_lossy(&dom.stdout).into_owned(), console)
}

/// Every `data-metric="SAMPLE">VALUE<` on a page (attribute values HTML-escaped).
fn shown(page: &str) -> BTreeMap<String, f64> {
    page.split("data-metric=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let value = rest.split_once('>')?.1.split_once('<')?.0;
            Some((name.replace("&quot;", "\""), value.trim().parse().ok()?))
        })
        .collect()
}

async fn exposition(admin: &str) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("{admin}/metrics: {e}"))
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_pages_show_what_metrics_say_in_a_real_browser() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let registry = RegistryProcess::start();
    let names = Names::new("status");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.push(("NRT_SCHEMA_REGISTRY_URL", &registry.url));
    env.push(("NRT_DASHBOARDS_URL", "http://127.0.0.1:13000"));
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    let admin = pipeline.url.clone();
    common::landed(&cfg, &names, EVENTS).await;
    // Settled: everything committed, the lag gauge refreshed (librdkafka statistics every 5 s), and at
    // least two samples of history for the rates and the chart.
    common::wait_for(30, "lag 0 and the last batch committed", || async {
        let m = exposition(&admin).await;
        let lag: f64 = m
            .iter()
            .filter(|(k, _)| k.starts_with("nrt_consumer_lag{"))
            .map(|(_, v)| v)
            .sum();
        let written = m
            .get("nrt_events_written_total{sink=\"clickhouse\"}")
            .copied()
            .unwrap_or(0.0);
        (lag == 0.0 && written == EVENTS as f64 && m.keys().any(|k| k.starts_with("nrt_consumer_lag{")))
            .then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;

    let stack = Path::new(ROOT).join(".stack");
    std::fs::create_dir_all(&stack).unwrap_or_else(|e| panic!("{e}"));
    let shot = stack.join("status-page.png");
    let (dom, console) = browse(&format!("{admin}/"), &shot);
    assert!(
        console.is_empty(),
        "console messages on the status page: {console:#?}"
    );
    let metrics = exposition(&admin).await;
    let on_page = shown(&dom);
    let all = EVENTS as f64;
    for (sample, want) in [
        ("nrt_events_polled_total", all),
        ("nrt_events_published_total", all),
        ("nrt_events_consumed_total", all),
        ("nrt_events_written_total{sink=\"clickhouse\"}", all),
        ("nrt_events_written_total{sink=\"minio\"}", all),
        ("nrt_dead_letters_total", 0.0),
    ] {
        assert_eq!(on_page.get(sample), Some(&want), "{sample} on the page");
    }
    assert!(
        on_page.keys().any(|k| k.starts_with("nrt_consumer_lag{")),
        "lag per partition: {on_page:?}"
    );
    assert!(
        on_page.keys().any(|k| k.starts_with("nrt_actor_restarts_total{")),
        "actors: {on_page:?}"
    );
    for (sample, value) in &on_page {
        assert_eq!(
            metrics.get(sample),
            Some(value),
            "{sample}: the page says {value}, /metrics says otherwise"
        );
    }
    for section in [
        "id=\"actors\"",
        "id=\"throughput\"",
        "id=\"latency\"",
        "id=\"lag\"",
        "id=\"commits\"",
        "id=\"dead-letters\"",
    ] {
        assert!(dom.contains(section), "the page has no {section} section");
    }
    assert!(dom.contains("<polyline"), "the throughput chart has no line");
    assert!(
        dom.contains(&format!("href=\"{}/\"", registry.url)),
        "a link to the registry's page"
    );
    println!(
        "status page: {} numbers equal to /metrics; screenshot {}",
        on_page.len(),
        shot.display()
    );

    // Plain HTTP (no browser, no script): the same numbers, server-rendered.
    let html = reqwest::get(format!("{admin}/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert_eq!(
        shown(&html).get("nrt_events_consumed_total"),
        Some(&(EVENTS as f64))
    );

    // The registry's page: the subject, its version, compatibility and the schema's text.
    let subject = format!("{}-value", names.topic);
    let shot = stack.join("registry-page.png");
    let (dom, console) = browse(&format!("{}/?subject={subject}&version=1", registry.url), &shot);
    assert!(
        console.is_empty(),
        "console messages on the registry page: {console:#?}"
    );
    assert!(dom.contains(&subject), "the subject is listed");
    assert!(dom.contains("BACKWARD"), "its compatibility level");
    assert!(dom.contains("version 1 (id 1)"), "the schema shown");
    assert!(dom.contains("created_at"), "the schema's text");
    // Confluent's clients asking `/` for JSON still get `{}`.
    let root = reqwest::get(format!("{}/", registry.url))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root.text().await.unwrap_or_default(), "{}");
    println!("registry page: screenshot {}", shot.display());
}
