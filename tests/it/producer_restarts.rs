//! Every producer-side actor restarted again and again while the producer runs flat out, through the
//! documented operator action (`POST /actors/{name}/restart`) and, in debug builds, a panic: the events
//! API hands each event out once, so whatever the Poller had fetched when it went down must still be
//! published. The Mock API's `served` must equal the topic's committed records, all distinct.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::HashSet;

use common::{Names, NrtProcess, Service};

const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 120_000;
const TOKEN: &str = "test-admin-token-producer-restarts";
const ACTORS: [&str; 3] = ["poller", "encoder", "kafka_publisher"];
/// Restarts of each actor: stops (the operator's restart) and panics alternate.
const ROUNDS: u64 = 6;

async fn post(admin: &str, path: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{admin}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_producer_actors_loses_no_polled_event() {
    let cfg = common::services();
    common::require_all(&cfg, &[Service::Kafka, Service::Registry]).await;
    let names = Names::new("prodrestart");
    let mock = common::spawn_mock(2210, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.push(("NRT_ADMIN_TOKEN", TOKEN));
    let mut producer = NrtProcess::spawn(&["run", "--role", "producer"], &env);
    let admin = producer.url.clone();
    let served = || async { common::get_json(&format!("{}/health", mock.url)).await["served"].as_u64() };

    let mut restarted = 0;
    for round in 0..ROUNDS {
        for actor in ACTORS {
            // Only while the events API still has events to hand out: the restarts hit polls under way.
            if served().await.unwrap_or_default() >= EVENTS {
                break;
            }
            let how = match round % 2 {
                0 => format!("/actors/{actor}/restart"),
                _ if cfg!(debug_assertions) => format!("/actors/{actor}/crash?how=panic"),
                _ => format!("/actors/{actor}/restart"),
            };
            assert_eq!(post(&admin, &how).await, 202, "{how}");
            restarted += 1;
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
    }
    common::wait_for(240, "every event served", || async {
        (served().await? == EVENTS).then_some(())
    })
    .await;
    // Then publishing settles: every event published, or (a loss) no progress for 10 s.
    let (mut last, mut since) = (-1.0, std::time::Instant::now());
    loop {
        let published = common::metric(&admin, "nrt_events_published_total")
            .await
            .unwrap_or_default();
        if published >= EVENTS as f64 || since.elapsed() > std::time::Duration::from_secs(10) {
            break;
        }
        if published != last {
            (last, since) = (published, std::time::Instant::now());
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let actors = common::get_json(&format!("{admin}/actors")).await;
    let restarts: u64 = ACTORS
        .iter()
        .map(|a| actors[*a]["restarts"].as_u64().unwrap_or_default())
        .sum();
    assert_eq!(restarts, restarted, "restarts counted by /actors: {actors}");
    assert!(
        restarted >= 9,
        "only {restarted} restarts happened while events were served"
    );
    assert_eq!(producer.terminate(), Some(0));

    let keys = common::topic_keys(&cfg, &names.topic);
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(
        keys.len() as u64,
        EVENTS,
        "committed records in the topic (served {EVENTS})"
    );
    assert_eq!(distinct.len() as u64, EVENTS, "distinct events in the topic");
    println!(
        "producer restarts: {restarted} restarts of poller, encoder, kafka_publisher under full load; \
         served {EVENTS}, committed records {}, distinct {}",
        keys.len(),
        distinct.len()
    );
}
