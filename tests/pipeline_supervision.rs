//! Supervision on the real pipeline: consumer-side actors are made to fail mid-stream (the
//! debug-build-only crash hook of the admin API); each is restarted by its supervisor, the restarts are counted exactly, and
//! no event is lost or left duplicated.
#![cfg(feature = "integration")]

mod common;

use common::{Names, NrtProcess};

const SEED: u64 = 11;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 20_000;

const TOKEN: &str = "test-admin-token-7f3a";

async fn crash_with(admin: &str, actor: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().post(format!("{admin}/actors/{actor}/crash"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn crash(admin: &str, actor: &str) {
    assert_eq!(
        crash_with(admin, actor, Some(TOKEN)).await,
        202,
        "crashing {actor}"
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
    assert_eq!(crash_with(&admin, "batcher", None).await, 401);
    assert_eq!(crash_with(&admin, "batcher", Some("wrong-token")).await, 401);
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

    let crashed = ["kafka_reader", "batcher", "clickhouse_writer", "minio_writer"];
    for (i, actor) in crashed.iter().enumerate() {
        let at = 2_000 * (i as u64 + 1);
        common::wait_for(120, &format!("{at} rows before crashing {actor}"), || async {
            (common::clickhouse_count(&cfg, &names.table, false).await? >= at).then_some(())
        })
        .await;
        crash(&admin, actor).await;
    }
    let raw = common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;

    let actors = common::get_json(&format!("{admin}/actors")).await;
    for actor in crashed {
        assert_eq!(actors[actor]["restarts"], 1, "{actor}: {actors}");
        assert_eq!(actors[actor]["state"], "running", "{actor}: {actors}");
        let sample = format!("nrt_actor_restarts_total{{actor=\"{actor}\"}}");
        assert_eq!(common::metric(&admin, &sample).await, Some(1.0), "{sample}");
    }
    assert_eq!(actors["poller"]["restarts"], 0, "{actors}");

    println!("supervision: 4 actors crashed and restarted; {EVENTS} events FINAL ({raw} rows before merge)");
    assert_eq!(pipeline.terminate(), Some(0));
}
