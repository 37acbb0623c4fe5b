//! The pipeline against secured services, the way production runs it: Kafka over SASL_SSL with
//! SCRAM-SHA-512, `nrt registry` over HTTPS with basic auth, MinIO over HTTPS with SSE-S3, ClickHouse
//! over HTTPS with a password user; all trusting the stack's test CA. And the refusals: a wrong
//! password, an unknown CA, an expired certificate, each named by `nrt doctor` and stopping `nrt run`
//! before it consumes anything, with no secret in any output.
#![cfg(feature = "integration")]

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::secure::{ExpiredTlsServer, Secure, SecuredRegistry};
use common::{Names, NrtProcess, Service};
use nrt_pipeline::config::{Secret, ServicesConfig};
use nrt_pipeline::probes::Probes;
use nrt_pipeline::s3::ObjectStore;

const SEED: u64 = 1414;
const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 5_000;
const SECURED: [Service; 4] = [
    Service::Kafka,
    Service::Registry,
    Service::Minio,
    Service::Clickhouse,
];

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_lands_once_over_secured_services() {
    let base = common::services();
    common::require_all(&base, &common::PIPELINE_SERVICES).await;
    let secure = Secure::load();
    let registry = SecuredRegistry::start(&secure);
    let cfg = secure.services(&base, &registry, "writer");
    for p in Probes::new(&cfg, None, Duration::from_secs(10))
        .all(&SECURED)
        .await
    {
        assert!(
            p.ok,
            "{} over its secured endpoint {}: {}",
            p.service, p.endpoint, p.detail
        );
    }

    let names = Names::new("secured");
    let mock = common::spawn_mock(SEED, EVENTS, EPOCH_MS);
    let mut env: Vec<(String, String)> = names
        .env(&mock.url)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.extend(Secure::env(&cfg));
    let mut pipeline = NrtProcess::spawn(&["run", "--role", "all"], &refs(&env));
    common::assert_all_landed_once(&cfg, &names, SEED, EPOCH_MS, EVENTS).await;

    // Every object was stored encrypted (NRT_S3_SSE=AES256).
    let store = ObjectStore::new(&cfg.s3).unwrap_or_else(|e| panic!("{e}"));
    let keys = store.list(&names.prefix).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!keys.is_empty());
    for key in &keys {
        let sse = store.encryption(key).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sse.as_deref(), Some("AES256"), "{key}");
    }
    assert_eq!(pipeline.terminate(), Some(0), "nrt run exits 0 on SIGTERM");
}

fn python_registry(
    registry: &SecuredRegistry,
    auth: Option<&str>,
    mode: &str,
    arg: &str,
) -> serde_json::Value {
    let python = std::env::var("NRT_PYTHON").unwrap_or_else(|_| {
        panic!("NRT_PYTHON is not set: scripts/test.sh installs confluent-kafka and sets it")
    });
    let secure = Secure::load();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/confluent_compat.py");
    let mut cmd = Command::new(&python);
    cmd.args([script, mode, &registry.url, arg])
        .env("NRT_PY_REGISTRY_CA", secure.tls("ca.pem"));
    if let Some(auth) = auth {
        cmd.env("NRT_PY_REGISTRY_BASIC_AUTH", auth);
    }
    let out = common::run(&mut cmd);
    assert!(out.status.success(), "{script} {mode}: {}", common::text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::text(&out)))
}

#[tokio::test]
async fn confluent_python_client_works_with_the_secured_registry() {
    let secure = Secure::load();
    let registry = SecuredRegistry::start(&secure);
    let writer = format!("writer:{}", registry.password("writer"));
    let reader = format!("reader:{}", registry.password("reader"));
    let subject = "secured-value";

    let seen = python_registry(&registry, Some(&writer), "produce", subject);
    assert_eq!(seen["id"], 1, "{seen}");
    assert_eq!(seen["latest"], serde_json::json!({"id": 1, "version": 1}));
    assert_eq!(seen["subjects"], serde_json::json!([subject]));
    let hex = seen["serialized_hex"].as_str().unwrap_or_default().to_owned();

    // A reader reads (and deserializes) but may not register: Confluent's 403 / 40301.
    let back = python_registry(&registry, Some(&reader), "consume", &hex);
    assert_eq!(back["deserialized"]["user_id"], 42, "{back}");
    let r = python_registry(&registry, Some(&reader), "refused", "another-value");
    assert_eq!(r["read"], serde_json::json!({"ok": [subject]}));
    assert_eq!(
        r["write"],
        serde_json::json!({"http_status": 403, "error_code": 40301})
    );
    // No credentials, or a wrong password: 401 for everything.
    let wrong = format!("writer:{}", registry.password("reader"));
    for auth in [None, Some(wrong.as_str())] {
        let r = python_registry(&registry, auth, "refused", "another-value");
        let denied = serde_json::json!({"http_status": 401, "error_code": 401});
        assert_eq!((&r["read"], &r["write"]), (&denied, &denied), "{auth:?}");
    }
}

/// A case of refusal: the services' configuration and what `nrt doctor` must say for each.
struct Case {
    name: &'static str,
    cfg: ServicesConfig,
    cause: &'static str,
    /// What the TLS failure must say of the server's certificate.
    certificate: Option<&'static str>,
    secrets: Vec<String>,
}

fn cases(
    secure: &Secure,
    base: &ServicesConfig,
    registry: &SecuredRegistry,
    expired: &ExpiredTlsServer,
) -> Vec<Case> {
    let good = secure.services(base, registry, "writer");
    let mut secrets: Vec<String> = vec![
        secure.get("NRT_TEST_KAFKA_SCRAM_PASSWORD").to_owned(),
        registry.password("writer").to_owned(),
        secure.get("NRT_TEST_MINIO_HTTPS_SECRET_KEY").to_owned(),
        secure.get("NRT_TEST_CLICKHOUSE_SECURE_PASSWORD").to_owned(),
    ];
    let wrong_passwords = {
        let mut c = good.clone();
        let wrong = |s: &str| format!("wrong-{s}-{}", common::unique(""));
        let pw = [wrong("kafka"), wrong("registry"), wrong("s3"), wrong("ch")];
        secrets.extend(pw.iter().cloned());
        c.kafka.properties = Secret::new(secure.kafka_properties(&pw[0], &secure.tls("ca.pem")));
        c.registry.basic_auth = Secret::new(format!("writer:{}", pw[1]));
        c.s3.secret_key = Secret::new(pw[2].clone());
        c.clickhouse.password = Secret::new(pw[3].clone());
        c
    };
    let unknown_ca = {
        let mut c = good.clone();
        let other = secure.tls("other-ca.pem");
        c.kafka.properties =
            Secret::new(secure.kafka_properties(secure.get("NRT_TEST_KAFKA_SCRAM_PASSWORD"), &other));
        c.registry.ca_file = Some(other.clone().into());
        c.s3.ca_file = Some(other.clone().into());
        c.clickhouse.ca_file = Some(other.into());
        c
    };
    let expired_cert = {
        let mut c = good.clone();
        let at = format!("localhost:{}", expired.port);
        c.kafka.brokers = at.clone();
        c.registry.url = format!("https://{at}");
        c.s3.endpoint = format!("https://{at}");
        c.clickhouse.url = format!("https://{at}");
        c
    };
    vec![
        Case {
            name: "wrong password",
            cfg: wrong_passwords,
            cause: "authentication: the credentials were refused",
            certificate: None,
            secrets: secrets.clone(),
        },
        Case {
            name: "unknown CA",
            cfg: unknown_ca,
            cause: "TLS: the server's certificate is signed by a CA this client does not trust",
            certificate: Some("issued by O=nrt-pipeline tests, CN=nrt test CA"),
            secrets: secrets.clone(),
        },
        Case {
            name: "expired certificate",
            cfg: expired_cert,
            cause: "TLS: the server's certificate has expired",
            certificate: Some("(certificate O=nrt-pipeline tests, CN=localhost, issued by O=nrt-pipeline tests, CN=nrt test CA, not after Jan  1 00:00:00 2021 GMT)"),
            secrets,
        },
    ]
}

fn assert_no_secret(case: &Case, what: &str, output: &str) {
    for s in &case.secrets {
        assert!(
            !output.contains(s.as_str()),
            "{}: a secret appears in {what}:\n{output}",
            case.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_named_by_doctor_and_stop_run_before_consuming() {
    let base = common::services();
    common::require(Service::Kafka, &base).await;
    let secure = Secure::load();
    let registry = SecuredRegistry::start(&secure);
    let expired = ExpiredTlsServer::start(&secure);
    for case in cases(&secure, &base, &registry, &expired) {
        let env = Secure::env(&case.cfg);

        let out = common::run(
            Command::new(env!("CARGO_BIN_EXE_nrt"))
                .arg("doctor")
                .envs(refs(&env)),
        );
        let said = common::text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: doctor must fail:\n{said}",
            case.name
        );
        for service in SECURED {
            let line = said
                .lines()
                .find(|l| l.starts_with(service.name()))
                .unwrap_or_else(|| panic!("{}: no {service} line:\n{said}", case.name));
            assert!(
                line.contains("FAIL") && line.contains(case.cause),
                "{}: {service}: {line}",
                case.name
            );
            if let Some(cert) = case.certificate {
                assert!(
                    line.contains(cert),
                    "{}: {service} must name the certificate: {line}",
                    case.name
                );
            }
        }
        assert_eq!(
            said.matches("fix: ").count(),
            4,
            "{}: one fix per failure:\n{said}",
            case.name
        );
        assert_no_secret(&case, "nrt doctor's output", &said);

        // `nrt run` refuses to start: exit 2, each refusal named, and not even the topic created.
        let names = Names::new("refused");
        let mut run_env: Vec<(String, String)> = names
            .env("http://127.0.0.1:9")
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        run_env.extend(env.iter().cloned());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nrt"));
        cmd.args(["run", "--role", "all"]).envs(refs(&run_env));
        let out = common::run(&mut cmd);
        let said = common::text(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: nrt run must refuse to start:\n{said}",
            case.name
        );
        for service in SECURED {
            assert!(
                said.contains(&format!("refused by {service}")),
                "{}: {service} not named:\n{said}",
                case.name
            );
        }
        assert!(said.contains(case.cause), "{}:\n{said}", case.name);
        assert_no_secret(&case, "nrt run's output", &said);
        assert!(
            !topic_exists(&base, &names.topic),
            "{}: the topic was created",
            case.name
        );
    }
}

fn topic_exists(cfg: &ServicesConfig, topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = nrt_pipeline::kafka::base_config(&cfg.kafka)
        .and_then(|c| c.create())
        .unwrap_or_else(|e| panic!("kafka: {e}"));
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("metadata: {e}"));
    md.topics().iter().any(|t| t.name() == topic)
}
