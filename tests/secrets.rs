//! Credentials never reach the logs: a pipeline runs at debug level with an admin token, the S3 keys
//! and a wrong ClickHouse password (so authentication errors are logged again and again), is refused
//! on the admin API and stopped; its whole log is then searched for every secret.
#![cfg(feature = "integration")]

mod common;

use common::{Names, NrtProcess};

const TOKEN: &str = "admin-token-never-logged-5d1c";

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_the_log() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("secrets");
    let mock = common::spawn_mock(44, 2_000, 1_767_225_600_000);
    let password = common::unique("wrong-clickhouse-password-");
    let mut env = names.env(&mock.url);
    env.push(("RUST_LOG", "debug"));
    env.push(("NRT_ADMIN_TOKEN", TOKEN));
    env.push(("NRT_CLICKHOUSE_PASSWORD", &password));
    env.push(("NRT_SHUTDOWN_TIMEOUT_MS", "1000"));
    let log = std::env::temp_dir().join(format!("{}.log", common::unique("nrt-secrets-")));
    let mut pipeline = NrtProcess::spawn_logging_to(&["run", "--role", "all"], &env, &log);
    common::wait_for(60, "ClickHouse refusing the wrong password", || async {
        let sample = r#"nrt_sink_errors_total{sink="clickhouse"}"#;
        (common::metric(&pipeline.url, sample).await? >= 3.0).then_some(())
    })
    .await;
    let refused = reqwest::Client::new()
        .post(format!("{}/actors/batcher/crash", pipeline.url))
        .bearer_auth(format!("{TOKEN}-wrong"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(refused.ok(), Some(401));
    let actors = common::get_json(&format!("{}/actors", pipeline.url)).await;
    let error = actors["clickhouse_writer"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("516") || error.contains("193"),
        "no authentication error in /actors: {error}"
    );
    assert!(!error.contains(&password), "/actors shows the password");
    pipeline.terminate();

    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let secrets = [
        ("admin token", TOKEN.to_owned()),
        ("ClickHouse password", password.clone()),
        ("S3 secret key", cfg.s3.secret_key.expose().to_owned()),
    ];
    for (what, secret) in &secrets {
        assert!(!secret.is_empty(), "{what} is empty: nothing to look for");
        if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
            panic!("the {what} is in the log ({}): {line}", log.display());
        }
    }
    assert!(
        text.contains("clickhouse"),
        "the log never mentions ClickHouse: was it captured?"
    );
    println!(
        "secrets: {} log lines at debug level (auth failures included): no admin token, ClickHouse password or \
         S3 secret key in them, nor in /actors",
        text.lines().count()
    );
    let _ = std::fs::remove_file(&log);
}
