//! Credentials never reach the logs, at debug level: a pipeline that works, with a ClickHouse password
//! (the secured ClickHouse user over HTTPS, sent with every insert), the S3 keys and an admin token that
//! refuses a wrong one; and a start refused for a wrong password. Every log is searched for every secret.
#![cfg(feature = "integration")]

use crate::common;

use common::secure::Secure;
use common::{Names, NrtProcess};

const TOKEN: &str = "admin-token-never-logged-5d1c";
const SEED: u64 = 44;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 2_000;

fn assert_absent(text: &str, log: &std::path::Path, secrets: &[(&str, String)]) {
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "{what} is empty: nothing to look for");
        if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
            panic!("the {what} is in the log ({}): {line}", log.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_a_debug_log_of_a_working_pipeline() {
    let base = common::services();
    common::require_all(&base, &common::PIPELINE_SERVICES).await;
    let secure = Secure::load();
    let mut cfg = base.clone();
    cfg.clickhouse.url = secure.get("NRT_TEST_CLICKHOUSE_HTTPS_URL").to_owned();
    cfg.clickhouse.user = secure.get("NRT_TEST_CLICKHOUSE_SECURE_USER").to_owned();
    cfg.clickhouse.password =
        nrt_pipeline::config::Secret::new(secure.get("NRT_TEST_CLICKHOUSE_SECURE_PASSWORD"));
    cfg.clickhouse.ca_file = Some(secure.tls("ca.pem").into());
    let ca = secure.tls("ca.pem");

    let names = Names::new("secrets");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env = names.env(&mock.url);
    env.retain(|(k, _)| *k != "RUST_LOG");
    env.extend([
        ("RUST_LOG", "debug"),
        ("NRT_ADMIN_TOKEN", TOKEN),
        ("NRT_CLICKHOUSE_URL", cfg.clickhouse.url.as_str()),
        ("NRT_CLICKHOUSE_USER", cfg.clickhouse.user.as_str()),
        ("NRT_CLICKHOUSE_PASSWORD", cfg.clickhouse.password.expose()),
        ("NRT_CLICKHOUSE_CA_FILE", ca.as_str()),
    ]);
    let log = std::env::temp_dir().join(format!("{}.log", common::unique("nrt-secrets-")));
    let mut pipeline = NrtProcess::spawn_logging_to(&["run", "--role", "all"], &env, &log);
    common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;
    let refused = reqwest::Client::new()
        .post(format!("{}/actors/batcher/crash", pipeline.url))
        .bearer_auth(format!("{TOKEN}-wrong"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(refused.ok(), Some(401));
    assert_eq!(pipeline.terminate(), Some(0));

    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert_absent(
        &text,
        &log,
        &[
            ("admin token", TOKEN.to_owned()),
            ("ClickHouse password", cfg.clickhouse.password.expose().to_owned()),
            ("S3 secret key", base.s3.secret_key.expose().to_owned()),
        ],
    );
    assert!(
        text.contains("clickhouse"),
        "the log never mentions ClickHouse: was it captured?"
    );
    println!(
        "secrets: {} log lines at debug level, {EVENTS} events through HTTPS ClickHouse with a password: no admin \
         token, ClickHouse password or S3 secret key in them",
        text.lines().count()
    );
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_refused_for_a_wrong_password_logs_no_secret() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("secrets-refused");
    let password = common::unique("wrong-clickhouse-password-");
    let mut env = names.env("http://127.0.0.1:9");
    env.retain(|(k, _)| *k != "RUST_LOG");
    env.extend([
        ("RUST_LOG", "debug"),
        ("NRT_ADMIN_TOKEN", TOKEN),
        ("NRT_CLICKHOUSE_PASSWORD", password.as_str()),
    ]);
    let out = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_nrt"))
            .args(["run", "--role", "all"])
            .envs(env),
    );
    let text = common::text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a wrong password must stop the start:\n{text}"
    );
    assert!(
        text.contains("refused by clickhouse") && text.contains("authentication"),
        "the refusal must name ClickHouse and the cause:\n{text}"
    );
    let log = std::path::Path::new("nrt run's output");
    assert_absent(
        &text,
        log,
        &[
            ("admin token", TOKEN.to_owned()),
            ("ClickHouse password", password.clone()),
            ("S3 secret key", cfg.s3.secret_key.expose().to_owned()),
        ],
    );
}
