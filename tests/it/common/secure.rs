//! The native stack's secured endpoints (`scripts/stack.sh` writes their credentials to
//! `.stack/secure.env` and their certificates to `.stack/tls/`): SASL_SSL Kafka, HTTPS MinIO with
//! SSE-S3, HTTPS ClickHouse with a password user, versitygw; and a secured `nrt registry` per test.

use std::collections::HashMap;
use std::path::PathBuf;

use nrt_pipeline::config::{Secret, ServicesConfig};

use super::{unique, NrtProcess, START_HINT};

pub struct Secure {
    vars: HashMap<String, String>,
}

impl Secure {
    pub fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".stack/secure.env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the secured endpoints' settings ({}) are missing ({e}): {START_HINT}",
                path.display()
            )
        });
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Secure { vars }
    }

    pub fn get(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not in .stack/secure.env: {START_HINT}"))
    }

    /// A file of the test PKI: ca.pem, other-ca.pem, server-chain.pem, server.key, expired.pem…
    pub fn tls(&self, file: &str) -> String {
        format!("{}/{file}", self.get("NRT_TEST_TLS_DIR"))
    }

    /// librdkafka properties for the SASL_SSL listener.
    pub fn kafka_properties(&self, password: &str, ca: &str) -> String {
        format!(
            "security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512,sasl.username={},sasl.password={password},ssl.ca.location={ca}",
            self.get("NRT_TEST_KAFKA_SCRAM_USER")
        )
    }

    /// Every service over its secured endpoint; the registry is the one given.
    pub fn services(&self, base: &ServicesConfig, registry: &SecuredRegistry, user: &str) -> ServicesConfig {
        let ca = self.tls("ca.pem");
        let mut cfg = base.clone();
        cfg.kafka.brokers = self.get("NRT_TEST_KAFKA_SASL_BROKERS").to_owned();
        cfg.kafka.properties =
            Secret::new(self.kafka_properties(self.get("NRT_TEST_KAFKA_SCRAM_PASSWORD"), &ca));
        cfg.registry.url = registry.url.clone();
        cfg.registry.basic_auth = Secret::new(format!("{user}:{}", registry.password(user)));
        cfg.registry.ca_file = Some(ca.clone().into());
        cfg.s3.endpoint = self.get("NRT_TEST_MINIO_HTTPS_URL").to_owned();
        cfg.s3.access_key = Secret::new(self.get("NRT_TEST_MINIO_HTTPS_ACCESS_KEY"));
        cfg.s3.secret_key = Secret::new(self.get("NRT_TEST_MINIO_HTTPS_SECRET_KEY"));
        cfg.s3.ca_file = Some(ca.clone().into());
        cfg.s3.sse = "AES256".to_owned();
        cfg.clickhouse.url = self.get("NRT_TEST_CLICKHOUSE_HTTPS_URL").to_owned();
        cfg.clickhouse.user = self.get("NRT_TEST_CLICKHOUSE_SECURE_USER").to_owned();
        cfg.clickhouse.password = Secret::new(self.get("NRT_TEST_CLICKHOUSE_SECURE_PASSWORD"));
        cfg.clickhouse.ca_file = Some(ca.into());
        cfg
    }

    /// `services` as the environment of an `nrt` process.
    pub fn env(cfg: &ServicesConfig) -> Vec<(String, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        [
            ("NRT_KAFKA_BROKERS", cfg.kafka.brokers.clone()),
            ("NRT_KAFKA_PROPERTIES", cfg.kafka.properties.expose().to_owned()),
            ("NRT_SCHEMA_REGISTRY_URL", cfg.registry.url.clone()),
            (
                "NRT_SCHEMA_REGISTRY_BASIC_AUTH",
                cfg.registry.basic_auth.expose().to_owned(),
            ),
            ("NRT_SCHEMA_REGISTRY_CA_FILE", path(&cfg.registry.ca_file)),
            ("NRT_S3_ENDPOINT", cfg.s3.endpoint.clone()),
            ("NRT_S3_ACCESS_KEY", cfg.s3.access_key.expose().to_owned()),
            ("NRT_S3_SECRET_KEY", cfg.s3.secret_key.expose().to_owned()),
            ("NRT_S3_CA_FILE", path(&cfg.s3.ca_file)),
            ("NRT_S3_SSE", cfg.s3.sse.clone()),
            ("NRT_CLICKHOUSE_URL", cfg.clickhouse.url.clone()),
            ("NRT_CLICKHOUSE_USER", cfg.clickhouse.user.clone()),
            (
                "NRT_CLICKHOUSE_PASSWORD",
                cfg.clickhouse.password.expose().to_owned(),
            ),
            ("NRT_CLICKHOUSE_CA_FILE", path(&cfg.clickhouse.ca_file)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// `nrt registry` with TLS (the stack's certificate) and a users file: `writer` may write, `reader`
/// and `consumer` may read; each with a random password. `restart` changes who may come in.
pub struct SecuredRegistry {
    process: NrtProcess,
    pub url: String,
    dir: PathBuf,
    passwords: HashMap<&'static str, String>,
    tls: (String, String),
}

/// Every user a secured registry knows, and its role.
const USERS: [(&str, &str); 3] = [("writer", "write"), ("reader", "read"), ("consumer", "read")];

impl SecuredRegistry {
    pub fn start(secure: &Secure) -> Self {
        let dir = std::env::temp_dir().join(unique("nrt-secured-registry-"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let passwords: HashMap<&'static str, String> = USERS
            .iter()
            .map(|(name, _)| (*name, unique(&format!("{name}-"))))
            .collect();
        let tls = (secure.tls("server-chain.pem"), secure.tls("server.key"));
        write_users(&dir, &passwords, &[]);
        let process = spawn_registry(&dir, "127.0.0.1:0", &tls);
        // The certificate names localhost (and 127.0.0.1); clients connect by name, as in production.
        let url = process.url.replace("127.0.0.1", "localhost");
        assert!(url.starts_with("https://localhost:"), "{url}");
        SecuredRegistry {
            process,
            url,
            dir,
            passwords,
            tls,
        }
    }

    pub fn password(&self, user: &str) -> &str {
        &self.passwords[user]
    }

    /// Stops the registry and starts it again on the same port and data, knowing every user but
    /// `without` (their credentials are refused with 401 from then on).
    pub fn restart(&mut self, without: &[&str]) {
        self.process.kill();
        write_users(&self.dir, &self.passwords, without);
        let listen = self.process.url.trim_start_matches("https://").to_owned();
        self.process = spawn_registry(&self.dir, &listen, &self.tls);
    }
}

/// `dir/users`: every user of `USERS` but `without`, with its password's hash.
fn write_users(dir: &std::path::Path, passwords: &HashMap<&'static str, String>, without: &[&str]) {
    let users: String = USERS
        .iter()
        .filter(|(name, _)| !without.contains(name))
        .map(|(name, role)| {
            let hash = nrt_pipeline::registry::auth::hash_password(&passwords[name])
                .unwrap_or_else(|e| panic!("hash: {e}"));
            format!("{name}:{role}:{hash}\n")
        })
        .collect();
    let users_file = dir.join("users");
    std::fs::write(&users_file, users).unwrap_or_else(|e| panic!("{}: {e}", users_file.display()));
}

/// `nrt registry` over TLS with `dir`'s users file and data, listening on `listen`.
fn spawn_registry(dir: &std::path::Path, listen: &str, (cert, key): &(String, String)) -> NrtProcess {
    let (data, users) = (
        dir.join("data").display().to_string(),
        dir.join("users").display().to_string(),
    );
    NrtProcess::spawn(
        &[
            "registry",
            "--listen",
            listen,
            "--data-dir",
            &data,
            "--users-file",
            &users,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
        &[("RUST_LOG", "warn")],
    )
}

impl Drop for SecuredRegistry {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl s_server` presenting the stack's expired certificate (signed by the stack's CA) on a free
/// port, answering HTTP with `-www`: what a service whose certificate ran out looks like to a client.
pub struct ExpiredTlsServer {
    child: std::process::Child,
    pub port: u16,
}

impl ExpiredTlsServer {
    pub fn start(secure: &Secure) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("free port: {e}"));
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-cert",
                &secure.tls("expired.pem"),
                "-key",
                &secure.tls("expired.key"),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("openssl s_server: {e} (apt-get install openssl)"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "openssl s_server did not listen on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ExpiredTlsServer { child, port }
    }
}

impl Drop for ExpiredTlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
