//! Supervision on the real pipeline: consumer-side actors are made to fail mid-stream (the
//! debug-build-only crash hook of the admin API); each is restarted by its supervisor, the restarts are counted exactly, and
//! no event is lost or left duplicated.
#![cfg(feature = "integration")]

use crate::common;

use common::{Names, NrtProcess};

const SEED: u64 = 11;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 20_000;

const TOKEN: &str = "test-admin-token-7f3a";

async fn crash_with(admin: &str, actor: &str, how: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().post(format!("{admin}/actors/{actor}/crash?how={how}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn crash(admin: &str, actor: &str, how: &str) {
    assert_eq!(
        crash_with(admin, actor, how, Some(TOKEN)).await,
        202,
        "crashing {actor} ({how})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crashed_actors_restart_and_nothing_is_lost() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("supervision");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    common::arm_chaos(&mock.url, "slow", 100_000, 25).await;
    let mut env = names.env(&mock.url);
    env.push(("NRT_POLL_BATCH", "100"));
    env.push(("NRT_ADMIN_TOKEN", TOKEN));
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    let admin = pipeline.url.clone();
    // The mutating endpoint wants the token: none or a wrong one is refused, and nothing is crashed.
    assert_eq!(crash_with(&admin, "batcher", "stop", None).await, 401);
    assert_eq!(
        crash_with(&admin, "batcher", "stop", Some("wrong-token")).await,
        401
    );
    assert_eq!(crash_with(&admin, "batcher", "explode", Some(TOKEN)).await, 400);
    for path in ["actors", "ready", "metrics"] {
        let body = reqwest::get(format!("{admin}/{path}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let text = body.text().await.unwrap_or_default();
        assert!(!text.contains(TOKEN), "/{path} shows the admin token");
        for secret in [&cfg.s3.secret_key, &cfg.clickhouse.password] {
            assert!(
                secret.is_empty() || !text.contains(secret.expose()),
                "/{path} shows a credential"
            );
        }
    }

    // Two stop (a fatal error), two panic (a bug): both kinds come back the same way.
    let crashed = [
        ("kafka_reader", "stop"),
        ("batcher", "panic"),
        ("clickhouse_writer", "panic"),
        ("minio_writer", "stop"),
    ];
    for (i, (actor, how)) in crashed.iter().enumerate() {
        let at = 2_000 * (i as u64 + 1);
        common::wait_for(120, &format!("{at} rows before crashing {actor}"), || async {
            (common::clickhouse_count(&cfg, &names.table, false).await? >= at).then_some(())
        })
        .await;
        crash(&admin, actor, how).await;
    }
    // The operator's restart (all builds): ClickhouseWriter once more.
    let restart = reqwest::Client::new()
        .post(format!("{admin}/actors/clickhouse_writer/restart"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(restart.ok(), Some(202), "POST /actors/clickhouse_writer/restart");
    // A crash loop: MinioWriter panics five more times in a row. Restarts back off, and readiness says so.
    common::wait_for(120, "10000 rows before the crash loop", || async {
        (common::clickhouse_count(&cfg, &names.table, false).await? >= 10_000).then_some(())
    })
    .await;
    for _ in 0..5 {
        crash(&admin, "minio_writer", "panic").await;
    }
    let looping = common::wait_for(30, "minio_writer crash-looping in /actors", || async {
        let actors = common::get_json(&format!("{admin}/actors")).await;
        (actors["minio_writer"]["crash_looping"] == true).then_some(actors)
    })
    .await;
    let ready = reqwest::get(format!("{admin}/ready"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ready.status().as_u16(),
        503,
        "/ready while minio_writer crash-loops"
    );
    let body: serde_json::Value = ready.json().await.unwrap_or_else(|e| panic!("{e}"));
    let not_running = body["actors_not_running"].to_string();
    assert!(not_running.contains("minio_writer"), "/ready: {body}");
    println!(
        "supervision: crash loop seen: minio_writer {} restarts in the last minute",
        looping["minio_writer"]["recent_restarts"]
    );
    let raw = common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;

    let actors = common::get_json(&format!("{admin}/actors")).await;
    let expected = |actor: &str| match actor {
        "minio_writer" => 6,
        "clickhouse_writer" => 2,
        _ => 1,
    };
    for (actor, _) in crashed {
        assert_eq!(actors[actor]["restarts"], expected(actor), "{actor}: {actors}");
        assert_eq!(actors[actor]["state"], "running", "{actor}: {actors}");
        let sample = format!("nrt_actor_restarts_total{{actor=\"{actor}\"}}");
        assert_eq!(
            common::metric(&admin, &sample).await,
            Some(expected(actor) as f64),
            "{sample}"
        );
    }
    assert_eq!(actors["poller"]["restarts"], 0, "{actors}");
    let panicked = actors["clickhouse_writer"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        panicked.contains("panicked"),
        "clickhouse_writer's last error: {panicked}"
    );

    println!("supervision: 4 actors crashed (2 stops, 2 panics) and restarted, 1 crash loop; {EVENTS} events FINAL ({raw} rows before merge)");
    assert_eq!(pipeline.terminate(), Some(0));
}

/// The producer side: the KafkaPublisher panics with a batch produced but not committed, and the
/// Encoder panics with a batch published but not yet answered. The interrupted transaction is aborted
/// and the Poller's resend is the only copy consumers read; the resend of a batch whose transaction had
/// committed is answered without producing it again. Every event once in Kafka and in both sinks.
#[tokio::test(flavor = "multi_thread")]
async fn producer_actors_panicking_mid_batch_publish_every_event_once() {
    const SEED: u64 = 12;
    const EVENTS: u64 = 60_000;
    const CRASHES: u64 = 3;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("txn");
    let mock = common::spawn_mock_at(SEED, EVENTS, EPOCH_MS, Some(5_000));
    let mut env = names.env(&mock.url);
    env.push(("NRT_ADMIN_TOKEN", TOKEN));
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    let admin = pipeline.url.clone();
    let outcome = |o: &'static str| {
        let admin = admin.clone();
        async move {
            let sample = format!("nrt_producer_transactions_total{{outcome=\"{o}\"}}");
            common::metric(&admin, &sample).await.unwrap_or_default() as u64
        }
    };
    let restarts = |actor: &'static str| {
        let admin = admin.clone();
        async move {
            let sample = format!("nrt_actor_restarts_total{{actor=\"{actor}\"}}");
            common::metric(&admin, &sample).await.unwrap_or_default() as u64
        }
    };
    common::wait_for(60, "the first transaction", || async {
        (outcome("committed").await > 0).then_some(())
    })
    .await;
    for n in 1..=CRASHES {
        for actor in ["kafka_publisher", "encoder"] {
            assert_eq!(
                crash_with(&admin, actor, "panic-mid-batch", Some(TOKEN)).await,
                202,
                "arming {actor}"
            );
            common::wait_for(30, &format!("{actor} panicking mid-batch ({n})"), || async {
                (restarts(actor).await == n).then_some(())
            })
            .await;
        }
    }
    let raw = common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;
    let kafka = common::topic_records(&cfg, &names.topic);
    assert_eq!(kafka, EVENTS, "records a read_committed consumer sees in Kafka");
    let (aborted, replayed, committed) = (
        outcome("aborted").await,
        outcome("replayed").await,
        outcome("committed").await,
    );
    assert!(
        aborted >= CRASHES,
        "{aborted} transactions aborted after {CRASHES} publisher crashes"
    );
    assert!(
        replayed >= CRASHES,
        "{replayed} resends answered after {CRASHES} encoder crashes"
    );
    println!(
        "producer crashes: KafkaPublisher panicked {CRASHES}× before a commit, Encoder {CRASHES}× after a publish, \
         while {EVENTS} events were published; {committed} transactions committed, {aborted} aborted, \
         {replayed} resends answered from committed batches; Kafka holds {kafka} records (read_committed), \
         {EVENTS} FINAL in ClickHouse ({raw} raw rows) and {EVENTS} lines in MinIO, no id twice"
    );
}
