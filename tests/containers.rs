//! The container deployment on a real engine: the project's image, and docker-compose.yml brought up
//! with compose/standins.yml (local stand-ins for the images no registry serves here). The images come
//! from `scripts/containers.sh`, which runs these tests in its own phase (`cargo test --test containers`:
//! Cargo.toml marks this target `test = false`, so the main test phase, where no image exists yet, does
//! not select it); it also sets the NRT_* variables to the compose stack's published ports and secrets.
#![cfg(feature = "integration")]

#[path = "it/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Instant;

use common::{run, text, wait_for};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DOCKER: &str = "/usr/bin/docker";
const IMAGE: &str = "nrt-pipeline:0.1.0";

/// The seeded stream the Mock API container serves: `EVENTS` events at `RATE` per second, so the
/// stop and the crash below happen while events flow.
const SEED: u64 = 1313;
const EVENTS: u64 = 60_000;
const RATE: u64 = 600;
const EPOCH_MS: i64 = 1_767_225_600_000;

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn docker(args: &[&str]) -> String {
    ok(Command::new(DOCKER).args(args))
}

fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id])
}

/// docker-compose as scripts/containers.sh runs it: its files and project name from COMPOSE_FILE and
/// COMPOSE_PROJECT_NAME (docker-compose.yml, compose/standins.yml, maybe a limit for this machine),
/// secrets from its env file.
struct Compose {
    env_file: String,
}

impl Compose {
    fn from_env() -> Self {
        var("COMPOSE_FILE");
        var("COMPOSE_PROJECT_NAME");
        let compose = Compose {
            env_file: var("NRT_COMPOSE_ENV"),
        };
        let engine = run(Command::new(DOCKER).args(["info", "-f", "{{.ServerVersion}}"]));
        assert!(
            engine.status.success(),
            "the container engine is not running ({}): start it with `scripts/containers.sh images`",
            text(&engine)
        );
        compose
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(ROOT)
            .args(["--env-file", &self.env_file])
            .args(args)
            .env("NRT_MOCK_API_SEED", SEED.to_string())
            .env("NRT_MOCK_API_LIMIT", EVENTS.to_string())
            .env("NRT_MOCK_API_RATE", RATE.to_string());
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.cmd(args))
    }

    /// The containers of `service`, in replica order (consumer_1, consumer_2, …).
    fn containers(&self, service: &str) -> Vec<String> {
        let mut ids: Vec<(String, String)> = self
            .ok(&["ps", "-q", service])
            .lines()
            .map(|id| (inspect(id, "{{.Name}}"), id.to_owned()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// The host address of a replica's published admin port.
    fn admin_url(&self, service: &str, index: usize) -> String {
        let addr = self.ok(&["port", &format!("--index={index}"), service, "9180"]);
        assert!(!addr.is_empty(), "{service} #{index} publishes no admin port");
        format!("http://{addr}")
    }

    fn down(&self) {
        self.ok(&["down", "-v", "--remove-orphans"]);
    }
}

fn health(id: &str) -> String {
    inspect(
        id,
        "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
    )
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Partitions a consumer owns now, from its own counters.
async fn owned(admin: &str) -> Option<f64> {
    let count = |event: &str| format!("nrt_rebalance_partitions_total{{event=\"{event}\"}}");
    let assigned = common::metric(admin, &count("assigned")).await?;
    let revoked = common::metric(admin, &count("revoked")).await.unwrap_or(0.0);
    let lost = common::metric(admin, &count("lost")).await.unwrap_or(0.0);
    Some(assigned - revoked - lost)
}

async fn clickhouse(cfg: &nrt_pipeline::config::ServicesConfig, sql: &str) -> Option<u64> {
    nrt_pipeline::clickhouse::client(&cfg.clickhouse)
        .unwrap_or_else(|e| panic!("{e}"))
        .query(sql)
        .fetch_one::<u64>()
        .await
        .ok()
}

#[test]
fn the_image_runs_as_non_root_without_a_shell_and_trusts_no_extra_ca() {
    Compose::from_env();
    assert_eq!(inspect(IMAGE, "{{.Config.User}}"), "10001");
    assert_eq!(inspect(IMAGE, "{{json .Config.Entrypoint}}"), r#"["nrt"]"#);
    // Exec form: the healthcheck needs curl, not a shell.
    let check = inspect(IMAGE, "{{json .Config.Healthcheck.Test}}");
    assert!(check.starts_with(r#"["CMD","curl""#), "{check}");
    let size: u64 = inspect(IMAGE, "{{.Size}}").parse().unwrap_or_default();
    println!("image {IMAGE}: {} MB", size / 1_000_000);
    assert!(size > 0);

    // A read-only root filesystem and no capabilities are enough to run.
    let version = docker(&[
        "run",
        "--rm",
        "--read-only",
        "--cap-drop",
        "ALL",
        IMAGE,
        "--version",
    ]);
    assert!(version.starts_with("nrt "), "{version}");

    // The CAs this machine added to its trust store (a TLS-intercepting proxy's) were the build's extra
    // CA; none of them may be trusted by the runtime image.
    let bundle = trust_bundle(IMAGE);
    let mut local = 0;
    for entry in std::fs::read_dir("/usr/local/share/ca-certificates")
        .into_iter()
        .flatten()
        .flatten()
    {
        let pem = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for block in pem.split("-----END CERTIFICATE-----") {
            let Some(body) = block.split("-----BEGIN CERTIFICATE-----").nth(1) else {
                continue;
            };
            local += 1;
            let body = body.replace(['\n', '\r'], "");
            assert!(
                !bundle.contains(&body),
                "{:?} is trusted by the image",
                entry.path()
            );
        }
    }
    println!("{local} locally added CA certificate(s), none trusted by the image");

    // The mechanism with a CA made here: trusted by the runtime image only when asked. Only the
    // runtime stage is rebuilt (a secret is not part of the build cache's key).
    let dir = std::env::temp_dir().join(common::unique("nrt-ca"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (key, ca) = (dir.join("ca.key"), dir.join("ca.pem"));
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=nrt test extra CA",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&ca));
    let pem = std::fs::read_to_string(&ca).unwrap_or_else(|e| panic!("{e}"));
    let body = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|b| b.split("-----END CERTIFICATE-----").next())
        .unwrap_or_default()
        .replace(['\n', '\r'], "");
    assert!(body.len() > 100, "openssl made no certificate: {pem}");
    let sum = ok(Command::new("sha256sum").arg(&ca));
    let fingerprint = sum.split_whitespace().next().unwrap_or_default().to_owned();
    let wrong = "0".repeat(64);
    // Not asked: not trusted. Asked with its fingerprint: trusted. A fingerprint the secret does not
    // match: the build fails (a cached layer can never hold another CA than the one asked for).
    for (trust, want) in [
        ("no", Some(false)),
        (fingerprint.as_str(), Some(true)),
        (wrong.as_str(), None),
    ] {
        let tag = "nrt-pipeline:extra-ca-test";
        let built = run(Command::new(DOCKER)
            .current_dir(ROOT)
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "-q", "--secret"])
            .arg(format!("id=extra_ca,src={}", ca.display()))
            .args(["--build-arg", &format!("RUST_IMAGE={}", var("NRT_RUST_IMAGE"))])
            .args([
                "--build-arg",
                &format!("RUNTIME_IMAGE={}", var("NRT_RUNTIME_IMAGE")),
            ])
            .args(["--build-arg", &format!("TRUST_EXTRA_CA={trust}"), "-t", tag, "."]));
        let Some(want) = want else {
            assert!(!built.status.success(), "a wrong fingerprint was accepted");
            continue;
        };
        assert!(built.status.success(), "TRUST_EXTRA_CA={trust}: {}", text(&built));
        let trusted = trust_bundle(tag).contains(&body);
        docker(&["rmi", tag]);
        assert_eq!(trusted, want, "TRUST_EXTRA_CA={trust}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The image's CA bundle, on one line.
fn trust_bundle(image: &str) -> String {
    let id = docker(&["create", image]);
    let bundle =
        run(Command::new(DOCKER).args(["cp", &format!("{id}:/etc/ssl/certs/ca-certificates.crt"), "-"]));
    docker(&["rm", &id]);
    assert!(bundle.status.success(), "{}", text(&bundle));
    String::from_utf8_lossy(&bundle.stdout).replace(['\n', '\r'], "")
}

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run these through scripts/containers.sh"))
}

#[test]
fn compose_stack_end_to_end_with_three_consumers_a_stop_and_a_crash() {
    let compose = Compose::from_env();
    let cfg = common::services();
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    compose.down();
    let t0 = Instant::now();
    compose.ok(&["up", "-d", "--no-build", "--scale", "consumer=3"]);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(scenario(&compose, &cfg, t0));
    }));
    if result.is_err() {
        let logs = run(&mut compose.cmd(&["logs", "--no-color", "--tail=40"]));
        eprintln!("--- compose logs ---\n{}", text(&logs));
    }
    compose.down();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

async fn scenario(compose: &Compose, cfg: &nrt_pipeline::config::ServicesConfig, t0: Instant) {
    // Every container with a healthcheck reports healthy; the bucket job has run and exited 0.
    let services = [
        "kafka",
        "schema-registry",
        "minio",
        "clickhouse",
        "prometheus",
        "mock-api",
        "producer",
        "consumer",
    ];
    wait_for(240, "every container healthy", || async {
        let mut all = 0;
        for s in services {
            for id in compose.containers(s) {
                if health(&id) != "healthy" {
                    return None;
                }
                all += 1;
            }
        }
        Some(all)
    })
    .await;
    println!(
        "all {} containers healthy {:.0} s after `up`",
        services.len() + 2,
        t0.elapsed().as_secs_f64()
    );
    let init = compose.containers("minio-init");
    assert_eq!(init.len(), 1);
    assert_eq!(
        inspect(&init[0], "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    for s in ["mock-api", "producer", "consumer"] {
        for id in compose.containers(s) {
            assert_eq!(inspect(&id, "{{.HostConfig.ReadonlyRootfs}}"), "true", "{s}");
            assert_eq!(inspect(&id, "{{.Config.User}}"), "10001", "{s}");
        }
    }

    // The admin API through the published ports.
    let producer = compose.admin_url("producer", 1);
    let consumers: Vec<String> = (1..=3).map(|i| compose.admin_url("consumer", i)).collect();
    for url in std::iter::once(&producer).chain(&consumers) {
        assert_eq!(get(&format!("{url}/health")).await.0, 200, "{url}/health");
        assert_eq!(get(&format!("{url}/ready")).await.0, 200, "{url}/ready");
        let (status, metrics) = get(&format!("{url}/metrics")).await;
        assert_eq!(status, 200);
        assert!(metrics.contains("nrt_build_info"), "{url}/metrics");
    }
    let (status, subjects) = get("http://127.0.0.1:18081/subjects").await;
    assert_eq!(
        (status, subjects.as_str()),
        (200, r#"["events.v1-value"]"#),
        "the registry stand-in"
    );

    // Three consumers, three partitions: one each.
    let spread = wait_for(60, "one partition per consumer", || async {
        let mut each = Vec::new();
        for url in &consumers {
            each.push(owned(url).await?);
        }
        (each == [1.0, 1.0, 1.0]).then_some(each)
    })
    .await;
    println!("partitions per consumer: {spread:?}");
    // Prometheus of the compose stack finds every replica through Docker's DNS.
    wait_for(60, "Prometheus scraping 3 consumers and the producer", || async {
        let q = "http://127.0.0.1:19090/api/v1/query?query=sum%20by%20(job)%20(up%7Bjob%3D~%22nrt-.*%22%7D)";
        let (_, body) = get(q).await;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let by_job: Vec<(String, String)> = v["data"]["result"]
            .as_array()?
            .iter()
            .map(|r| {
                (
                    r["metric"]["job"].as_str().unwrap_or("").to_owned(),
                    r["value"][1].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let want = [
            ("nrt-consumer".to_owned(), "3".to_owned()),
            ("nrt-producer".to_owned(), "1".to_owned()),
        ];
        want.iter().all(|w| by_job.contains(w)).then_some(())
    })
    .await;

    // While events flow: `docker stop` of one consumer drains and exits 0 within its grace period.
    wait_for(120, "events flowing into ClickHouse", || async {
        let n = clickhouse(cfg, "SELECT count() FROM analytics.events_raw").await?;
        (n >= EVENTS / 10).then_some(n)
    })
    .await;
    let ids = compose.containers("consumer");
    assert_eq!(ids.len(), 3);
    let before_stop = clickhouse(cfg, "SELECT count() FROM analytics.events_raw")
        .await
        .unwrap_or_default();
    let stop_started = Instant::now();
    docker(&["stop", &ids[0]]);
    let stop_secs = stop_started.elapsed().as_secs_f64();
    assert_eq!(
        inspect(&ids[0], "{{.State.ExitCode}} {{.State.OOMKilled}}"),
        "0 false"
    );
    let logs = text(&run(Command::new(DOCKER).args(["logs", &ids[0]])));
    assert!(
        logs.contains("nrt run: drained"),
        "no drain in the stopped consumer's log:\n{logs}"
    );
    println!("docker stop of consumer 1: exit 0 after {stop_secs:.1} s, drained");
    assert!(
        stop_secs < 40.0,
        "stop took {stop_secs:.1} s: past the grace period, killed"
    );

    // A crash: SIGKILL to the consumer's process (not `docker kill`, which counts as a stop); the
    // restart policy brings it back.
    let before_crash = clickhouse(cfg, "SELECT count() FROM analytics.events_raw")
        .await
        .unwrap_or_default();
    assert!(
        before_crash < EVENTS,
        "the source ran dry before the crash ({before_crash} rows): the crash must come mid-stream"
    );
    println!("{before_stop} rows in ClickHouse at the stop, {before_crash} at the crash");
    let pid = inspect(&ids[1], "{{.State.Pid}}");
    ok(Command::new("kill").args(["-KILL", &pid]));
    let crashed = Instant::now();
    wait_for(90, "the killed consumer restarted and healthy", || async {
        let restarts: u32 = inspect(&ids[1], "{{.RestartCount}}").parse().ok()?;
        (restarts >= 1 && health(&ids[1]) == "healthy").then_some(())
    })
    .await;
    println!(
        "consumer 2 killed (SIGKILL): restarted by its policy, healthy again after {:.1} s",
        crashed.elapsed().as_secs_f64()
    );

    // Everything lands once: ClickHouse (FINAL collapses what a replay wrote twice) and MinIO.
    let landed = wait_for(300, "every event in ClickHouse", || async {
        let n = clickhouse(cfg, "SELECT count() FROM analytics.events_raw FINAL").await?;
        (n == EVENTS).then_some(n)
    })
    .await;
    let raw = clickhouse(cfg, "SELECT count() FROM analytics.events_raw")
        .await
        .unwrap_or_default();
    let distinct = clickhouse(cfg, "SELECT uniqExact(event_id) FROM analytics.events_raw").await;
    assert_eq!(distinct, Some(EVENTS));
    let lines = wait_for(120, "every event in MinIO", || async {
        let lines = common::minio_lines(cfg, "").await;
        (lines.len() as u64 >= EVENTS).then_some(lines)
    })
    .await;
    let ids_in_lake = common::event_ids(&lines);
    assert_eq!(
        ids_in_lake.len() as u64,
        EVENTS,
        "an event sits in two MinIO objects"
    );
    let mut generator = nrt_pipeline::mock_api::Generator::seeded(SEED, EPOCH_MS);
    let expected: HashSet<String> = (0..EVENTS)
        .map(|_| generator.next_event().event_id.to_string())
        .collect();
    assert_eq!(
        ids_in_lake.into_iter().collect::<HashSet<_>>(),
        expected,
        "MinIO ids"
    );
    println!(
        "{landed} events once in ClickHouse ({raw} rows before merges) and {} lines in MinIO, {:.0} s after `up`",
        lines.len(),
        t0.elapsed().as_secs_f64()
    );

    // The producer drains on `docker stop` too.
    let producer_id = &compose.containers("producer")[0];
    docker(&["stop", producer_id]);
    assert_eq!(inspect(producer_id, "{{.State.ExitCode}}"), "0");
}
