//! Shared by the integration tests: service addresses (from `.env` and the environment, with the
//! native stack's defaults), a check that fails loudly when a service is missing, and unique names so
//! tests never see each other's topics, groups, buckets or tables.
#![allow(dead_code)] // each test file uses a different part of this module

pub use nrt_pipeline::probes::Service;

use std::time::Duration;

use nrt_pipeline::config::ServicesConfig;
use nrt_pipeline::probes;

pub const START_HINT: &str =
    "start the real services with `scripts/stack.sh up` (or run `scripts/test.sh`)";

/// The configuration the tests run against. A malformed `.env` fails here, by design.
pub fn services() -> ServicesConfig {
    if let Err(e) = dotenvy::dotenv() {
        assert!(e.not_found(), "cannot read .env: {e}");
    }
    match ServicesConfig::from_env() {
        Ok(cfg) => cfg,
        Err(e) => panic!("invalid service configuration in the environment: {e}"),
    }
}

/// Panics with the service name, the endpoint, what went wrong and how to start it, unless the service
/// answers. Integration tests never skip: a missing service is a failure.
pub async fn require(service: Service, cfg: &ServicesConfig) {
    let timeout = Duration::from_secs(5);
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"));
    let probe = probes::probe(cfg, service, &http, timeout).await;
    assert!(
        probe.ok,
        "{service} is not reachable at {} ({}): {START_HINT}",
        probe.endpoint, probe.detail
    );
}

/// A name no other test run uses: `prefix` + 12 random hex digits (lowercase, valid for topics,
/// groups, buckets and ClickHouse tables alike).
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

/// A real `nrt registry` process on a free port with its own data directory, killed on drop.
pub struct RegistryProcess {
    child: std::process::Child,
    pub url: String,
    pub data_dir: std::path::PathBuf,
    owns_dir: bool,
}

impl RegistryProcess {
    /// Starts a registry on a fresh, empty data directory.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("nrt-registry-test-"));
        let mut p = Self::start_in(&dir);
        p.owns_dir = true;
        p
    }

    /// Starts a registry on `dir` (kept on drop), e.g. to restart one on the same data.
    pub fn start_in(dir: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nrt"))
            .args(["registry", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `nrt registry`: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout from nrt registry"));
        let mut line = String::new();
        let read = std::io::BufReader::new(stdout).read_line(&mut line);
        let url = match (read, line.trim().rsplit_once(' ')) {
            (Ok(n), Some((_, url))) if n > 0 && url.starts_with("http://") => url.to_owned(),
            _ => {
                let _ = child.kill();
                panic!("nrt registry did not report its address (stdout: {line:?})");
            }
        };
        RegistryProcess {
            child,
            url,
            data_dir: dir.to_owned(),
            owns_dir: false,
        }
    }

    /// SIGKILL: no chance to flush anything that was not already durable.
    pub fn kill(mut self) -> std::path::PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.owns_dir = false;
        self.data_dir.clone()
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}
