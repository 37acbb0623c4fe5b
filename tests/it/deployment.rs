//! The container deployment's files, checked without a container engine: docker-compose.yml parsed and
//! validated by docker-compose itself, the seed's host ports, pinned images and healthchecks; the
//! Dockerfile linted by hadolint and building the binary with the tests' features. The images built and
//! the stack run for real: tests/containers.rs (scripts/containers.sh).
#![cfg(feature = "integration")]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, text};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// NRT_PYTHON and the tools installed beside it (tests/python/requirements.txt).
fn venv_tool(name: &str) -> PathBuf {
    let python = std::env::var("NRT_PYTHON").unwrap_or_else(|_| {
        panic!("NRT_PYTHON is not set: scripts/test.sh installs the test tools and sets it")
    });
    if name == "python" {
        return PathBuf::from(python);
    }
    Path::new(&python).with_file_name(name)
}

#[test]
fn compose_file_has_the_seed_services_ports_pins_and_healthchecks() {
    let out = run(Command::new(venv_tool("python"))
        .arg(format!("{ROOT}/tests/python/check_compose.py"))
        .arg(format!("{ROOT}/docker-compose.yml")));
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    let services = report["services"]
        .as_object()
        .unwrap_or_else(|| panic!("no services: {report}"));
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "clickhouse",
            "consumer",
            "grafana",
            "kafka",
            "kafka-exporter",
            "kafka-ui",
            "minio",
            "minio-init",
            "mock-api",
            "producer",
            "prometheus",
            "schema-registry"
        ]
    );
    // The host ports of docs/deployment.md's (and the seed's) table.
    let want: BTreeMap<&str, &[&str]> = [
        ("schema-registry", &["18081"][..]),
        ("kafka-ui", &["18082"][..]),
        ("minio", &["19000", "19001"][..]),
        ("clickhouse", &["18123"][..]),
        ("prometheus", &["19090"][..]),
        ("grafana", &["13000"][..]),
        ("mock-api", &["8000"][..]),
        // The admin APIs, on 127.0.0.1 only: the producer's fixed, each consumer replica's free.
        ("producer", &["19180"][..]),
        ("consumer", &[""][..]),
    ]
    .into_iter()
    .collect();
    for (service, ports) in want {
        assert_eq!(services[service]["ports"], serde_json::json!(ports), "{service}");
    }
    for role in ["producer", "consumer", "mock-api"] {
        assert_eq!(
            services[role]["build"], true,
            "{role} is built from this repository"
        );
    }
}

#[test]
fn docker_compose_validates_the_file_and_requires_the_secrets() {
    let compose = format!("{ROOT}/docker-compose.yml");
    let env_example = format!("{ROOT}/.env.example");
    let ok = run(Command::new("docker-compose").args([
        "--env-file",
        &env_example,
        "-f",
        &compose,
        "config",
        "-q",
    ]));
    assert!(ok.status.success(), "docker-compose config: {}", text(&ok));
    // Without the secrets in the environment or an env file, it refuses, naming the variable.
    let empty = std::env::temp_dir().join("nrt-empty.env");
    std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
    let refused = run(Command::new("docker-compose")
        .args([
            "--env-file",
            &empty.to_string_lossy(),
            "-f",
            &compose,
            "config",
            "-q",
        ])
        .env_remove("MINIO_ROOT_USER")
        .env_remove("MINIO_ROOT_PASSWORD")
        .env_remove("CLICKHOUSE_PASSWORD")
        .env_remove("GRAFANA_ADMIN_PASSWORD"));
    assert!(!refused.status.success(), "compose accepted missing secrets");
    assert!(text(&refused).contains("in .env"), "{}", text(&refused));
}

#[test]
fn dockerfile_lints_clean_and_builds_what_the_tests_build() {
    let dockerfile = format!("{ROOT}/Dockerfile");
    let lint = run(Command::new(venv_tool("hadolint")).args([
        "--config",
        &format!("{ROOT}/.hadolint.yaml"),
        &dockerfile,
    ]));
    assert!(lint.status.success(), "hadolint: {}", text(&lint));
    let body = std::fs::read_to_string(&dockerfile).unwrap_or_else(|e| panic!("{e}"));
    let build = body
        .lines()
        .find(|l| l.contains("cargo build"))
        .unwrap_or_default();
    assert_eq!(
        build.trim().trim_start_matches("&& ").trim_end_matches(" \\"),
        "cargo build --release --locked --bin nrt",
        "same (default) features as the tests"
    );
    // Official base images by default; a machine's own names only through build arguments.
    assert!(body.contains("\nARG RUST_IMAGE=rust:"), "default build image");
    assert!(
        body.contains("\nARG RUNTIME_IMAGE=debian:bookworm-slim\n"),
        "default runtime image"
    );
    assert!(!body.contains("nrt-local"), "nothing specific to one machine");
    // The extra CA is a build secret, never copied into a layer of the build stage.
    assert!(body.contains("--mount=type=secret,id=extra_ca"));
    assert!(
        !body.contains("COPY ca") && !body.contains("ADD "),
        "no certificate copied in"
    );
    // Cargo refuses a manifest whose declared targets are missing: the build stage must copy them all.
    let manifest = std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let copied: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| l.split_whitespace())
        .collect();
    for (dir, table) in [
        ("src", "[[bin]]"),
        ("benches", "[[bench]]"),
        ("examples", "[[example]]"),
    ] {
        if manifest.contains(table) {
            assert!(
                copied.contains(&dir),
                "Cargo.toml declares a {table} target in {dir}/ but the Dockerfile does not copy {dir}"
            );
        }
    }
    assert!(body.contains("\nUSER 10001\n"), "runs as a non-root user");
    assert!(
        body.contains("HEALTHCHECK") && body.contains("/health"),
        "has a healthcheck on /health"
    );
    assert_eq!(
        body.matches("\nFROM ").count() + usize::from(body.starts_with("FROM ")),
        2,
        "multi-stage"
    );
}
