//! Extra librdkafka properties from the operator (SASL, TLS, tuning), applied to every client: the
//! pipeline's producer and consumer and the dead-letter producer.
//!
//! Two sources, the file first, so the variable wins: `NRT_KAFKA_PROPERTIES_FILE` (`key=value` lines,
//! `#` comments) and `NRT_KAFKA_PROPERTIES` (`key=value,key=value`; a value with a comma belongs in the
//! file). A value may be `${env:NAME}` or `${file:/path}` to keep a secret out of both. The properties
//! the pipeline's guarantees rest on are refused, by name, whatever their value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Set by the pipeline itself; changing any of them would break a guarantee, so none can be passed.
const GUARDED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set NRT_KAFKA_BROKERS instead"),
    ("metadata.broker.list", "set NRT_KAFKA_BROKERS instead"),
    ("group.id", "set NRT_GROUP_ID instead"),
    ("enable.auto.commit", "offsets are committed only once both sinks hold a batch"),
    ("enable.auto.offset.store", "offsets are committed only once both sinks hold a batch"),
    ("auto.offset.reset", "a new consumer group starts at the earliest record, or events are skipped"),
    ("isolation.level", "read_committed hides the records of aborted transactions"),
    ("enable.partition.eof", "the reader does not expect end-of-partition events"),
    ("enable.idempotence", "the producer must be idempotent: a retried send is written once"),
    ("acks", "the producer waits for every in-sync replica (acks=all)"),
    ("request.required.acks", "the producer waits for every in-sync replica (acks=all)"),
    ("transactional.id", "set it with NRT_TRANSACTIONAL_ID (default: nrt-<topic>-<hostname>)"),
    ("transaction.timeout.ms", "the publisher sizes its transactions to it"),
];

/// Whether a property's value is a credential: shown as `***` everywhere.
pub fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.contains("jaas")
        || k.contains("token")
        || k == "ssl.key.pem"
        || k == "sasl.oauthbearer.config"
}

/// The operator's properties, resolved. `Debug` masks every sensitive value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// Parses both sources; an error names the property (never its value) and says why.
    pub fn resolve(inline: &str, file: Option<&Path>) -> Result<Self, String> {
        let mut props = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("NRT_KAFKA_PROPERTIES_FILE: cannot read {}: {e}", path.display()))?;
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'));
            for (n, line) in lines.enumerate() {
                let (k, v) = split(line).ok_or_else(|| {
                    format!("NRT_KAFKA_PROPERTIES_FILE: entry {} is not key=value", n + 1)
                })?;
                props.insert(k.to_owned(), v.to_owned());
            }
        }
        for entry in inline.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (k, v) = split(entry).ok_or_else(|| {
                let shown = entry.split('=').next().unwrap_or_default();
                format!("NRT_KAFKA_PROPERTIES: '{shown}' is not key=value (a value with a comma goes in NRT_KAFKA_PROPERTIES_FILE)")
            })?;
            props.insert(k.to_owned(), v.to_owned());
        }
        for (key, value) in props.iter_mut() {
            if let Some((_, why)) = GUARDED.iter().find(|(g, _)| g.eq_ignore_ascii_case(key)) {
                return Err(format!("Kafka property '{key}' cannot be set: {why}"));
            }
            *value = interpolate(key, value)?;
        }
        Ok(KafkaProperties(props))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `security.protocol`, lower-cased; `plaintext` when not set.
    pub fn security_protocol(&self) -> String {
        self.get("security.protocol").unwrap_or("plaintext").to_ascii_lowercase()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of the sensitive properties, for `config::redact` (librdkafka's messages, or a
    /// broker's, may quote one back).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.iter().filter(|(k, _)| is_sensitive(k)).map(|(_, v)| v)
    }
}

fn split(entry: &str) -> Option<(&str, &str)> {
    let (k, v) = entry.split_once('=')?;
    let k = k.trim();
    (!k.is_empty()).then_some((k, v.trim()))
}

/// `${env:NAME}` and `${file:/path}` (the file's content, without its trailing newline).
fn interpolate(key: &str, value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return Ok(value.to_owned());
    };
    match inner.split_once(':') {
        Some(("env", name)) => std::env::var(name)
            .map_err(|_| format!("Kafka property '{key}': environment variable {name} is not set")),
        Some(("file", path)) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("Kafka property '{key}': cannot read {path}: {e}")),
        _ => Err(format!("Kafka property '{key}': use ${{env:NAME}} or ${{file:/path}}")),
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, if is_sensitive(k) { "***" } else { v.as_str() })))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_entries_parse_and_override_the_file() {
        let dir = std::env::temp_dir().join(format!("nrt-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(&file, "# comment\nsecurity.protocol=SASL_SSL\n\nsasl.mechanism = SCRAM-SHA-256\n").unwrap();
        let p = KafkaProperties::resolve(" sasl.mechanism=SCRAM-SHA-512 , client.rack=r1,", Some(&file)).unwrap();
        assert_eq!(p.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(p.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(p.get("client.rack"), Some("r1"));
        assert_eq!(p.security_protocol(), "sasl_ssl");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn guarded_properties_are_refused_by_name_without_their_value() {
        for (key, _) in GUARDED {
            let err = KafkaProperties::resolve(&format!("{key}=s3cr3t-value"), None).unwrap_err();
            assert!(err.contains(key) && !err.contains("s3cr3t"), "{err}");
        }
        let err = KafkaProperties::resolve("ENABLE.AUTO.COMMIT=true", None).unwrap_err();
        assert!(err.contains("cannot be set"), "{err}");
    }

    #[test]
    fn malformed_entries_name_the_key_not_the_value() {
        let err = KafkaProperties::resolve("sasl.password", None).unwrap_err();
        assert!(err.contains("'sasl.password' is not key=value"), "{err}");
        let err = KafkaProperties::resolve("=x", None).unwrap_err();
        assert!(err.contains("not key=value"), "{err}");
    }

    #[test]
    fn secrets_come_from_env_or_file_and_never_print() {
        std::env::set_var("NRT_TEST_PROPS_PW", "hunter2-env");
        let dir = std::env::temp_dir().join(format!("nrt-props-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "hunter2-file\n").unwrap();
        let inline = format!(
            "sasl.username=alice,sasl.password=${{env:NRT_TEST_PROPS_PW}},ssl.key.password=${{file:{}}}",
            dir.join("pw").display()
        );
        let p = KafkaProperties::resolve(&inline, None).unwrap();
        assert_eq!(p.get("sasl.password"), Some("hunter2-env"));
        assert_eq!(p.get("ssl.key.password"), Some("hunter2-file"));
        let shown = format!("{p:?}");
        assert!(shown.contains("alice") && !shown.contains("hunter2"), "{shown}");
        let secrets: Vec<&str> = p.secrets().collect();
        let said = crate::config::redact("auth failed for alice with hunter2-env", &secrets);
        assert_eq!(said, "auth failed for alice with ***");
        std::env::remove_var("NRT_TEST_PROPS_UNSET");
        let err = KafkaProperties::resolve("sasl.password=${env:NRT_TEST_PROPS_UNSET}", None).unwrap_err();
        assert!(err.contains("NRT_TEST_PROPS_UNSET is not set"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
