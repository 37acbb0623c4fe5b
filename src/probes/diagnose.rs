//! From an error's text (every client words it differently) to what failed, why, and the fix, in the
//! terms of our configuration. The texts matched are rustls's (0.20 and 0.23), OpenSSL's and
//! librdkafka's, hyper's, ClickHouse's and S3's error codes.

use std::fmt;

use super::Service;

/// Where on the way to a working connection it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Config,
    Dns,
    Connect,
    Tls,
    Authentication,
    Authorization,
    /// The service answered, but not as it should (a 5xx, an unexpected reply).
    Service,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Config => "configuration",
            Stage::Dns => "DNS",
            Stage::Connect => "connect",
            Stage::Tls => "TLS",
            Stage::Authentication => "authentication",
            Stage::Authorization => "authorization",
            Stage::Service => "service",
        }
    }

    /// A failure an operator must fix: waiting will not make it go away. A service that is down or
    /// unreachable is waited for instead.
    pub fn is_misconfiguration(self) -> bool {
        matches!(
            self,
            Stage::Config | Stage::Tls | Stage::Authentication | Stage::Authorization
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    /// Why, in a few words.
    pub cause: String,
    /// What to do, in one line.
    pub fix: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage.name(), self.cause)
    }
}

/// The variables behind each part of a service's connection.
struct Vars {
    endpoint: &'static str,
    ca: &'static str,
    credentials: &'static str,
}

fn vars(service: Service) -> Vars {
    match service {
        Service::Kafka => Vars {
            endpoint: "NRT_KAFKA_BROKERS",
            ca: "ssl.ca.location in NRT_KAFKA_PROPERTIES",
            credentials: "sasl.username/sasl.password in NRT_KAFKA_PROPERTIES",
        },
        Service::Registry => Vars {
            endpoint: "NRT_SCHEMA_REGISTRY_URL",
            ca: "NRT_SCHEMA_REGISTRY_CA_FILE",
            credentials: "NRT_SCHEMA_REGISTRY_BASIC_AUTH",
        },
        Service::Minio => Vars {
            endpoint: "NRT_S3_ENDPOINT",
            ca: "NRT_S3_CA_FILE",
            credentials: "NRT_S3_ACCESS_KEY/NRT_S3_SECRET_KEY (or NRT_S3_CREDENTIALS)",
        },
        Service::Clickhouse => Vars {
            endpoint: "NRT_CLICKHOUSE_URL",
            ca: "NRT_CLICKHOUSE_CA_FILE",
            credentials: "NRT_CLICKHOUSE_USER/NRT_CLICKHOUSE_PASSWORD",
        },
        Service::Prometheus => Vars {
            endpoint: "NRT_PROMETHEUS_URL",
            ca: "the system's trust store",
            credentials: "(none)",
        },
    }
}

pub fn failure(stage: Stage, cause: impl Into<String>, fix: impl Into<String>) -> Failure {
    Failure {
        stage,
        cause: cause.into(),
        fix: fix.into(),
    }
}

/// The failure an error text describes; `Stage::Service` with the text itself when nothing matches.
pub fn classify(service: Service, text: &str) -> Failure {
    let t = text.to_ascii_lowercase();
    let v = vars(service);
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if has(&["expired", "certexpired"]) && has(&["certificate", "cert"]) {
        return failure(
            Stage::Tls,
            "the server's certificate has expired",
            "renew the server's certificate (the client's clock is assumed right)",
        );
    }
    if has(&["notyetvalid", "not yet valid", "certnotvalidyet"]) {
        return failure(
            Stage::Tls,
            "the server's certificate is not valid yet",
            "check the clocks of this machine and the server",
        );
    }
    if has(&["unknownissuer", "unknown issuer", "unable to get local issuer", "self-signed", "self signed", "unknown ca", "badsignature"]) {
        return failure(
            Stage::Tls,
            "the server's certificate is signed by a CA this client does not trust",
            format!("set {} to the PEM of the CA that signed it", v.ca),
        );
    }
    if has(&["notvalidforname", "not valid for name", "hostname mismatch", "ip address mismatch", "certnotvalidforname"]) {
        return failure(
            Stage::Tls,
            "the server's certificate does not name the host connected to",
            format!("connect by a name the certificate holds (in {}), or reissue it with this name", v.endpoint),
        );
    }
    if has(&["invalidcontenttype", "corrupt message", "wrong version number", "incorrect security.protocol", "packet length too long", "http request to an https server"]) {
        return failure(
            Stage::Tls,
            "client and server disagree on TLS (one speaks it, the other does not)",
            format!("match the scheme/protocol to the port: https:// or security.protocol for a TLS port ({})", v.endpoint),
        );
    }
    if has(&["certificate verify failed", "ssl handshake failed", "handshake failure", "invalid peer certificate", "invalid certificate"]) {
        return failure(
            Stage::Tls,
            "the TLS handshake failed",
            format!("check the server's certificate and {}", v.ca),
        );
    }
    if has(&["authentication failed", "sasl authentication error", "wrong password", "unknown user", "code: 516", "code: 193", "code: 192", "invalidaccesskeyid", "signaturedoesnotmatch", "http 401", "status 401", "unauthorized"]) {
        return failure(
            Stage::Authentication,
            "the credentials were refused",
            format!("check {}", v.credentials),
        );
    }
    if has(&["accessdenied", "access denied", "not authorized", "authorization failed", "http 403", "status 403", "forbidden", "code: 164", "code: 497"]) {
        return failure(
            Stage::Authorization,
            "the user is not allowed to do this",
            "grant the user the rights the pipeline needs (see docs/operations.md)",
        );
    }
    if has(&["failed to resolve", "dns error", "failed to lookup address", "name or service not known", "no address associated", "temporary failure in name resolution"]) {
        return failure(
            Stage::Dns,
            "the host name does not resolve",
            format!("check the host name in {}", v.endpoint),
        );
    }
    if has(&["connection refused", "connect error", "tcp connect", "timed out", "timeout", "all brokers are down", "network is unreachable", "no route to host", "connection reset"]) {
        return failure(
            Stage::Connect,
            "nothing answers at this address (down, or a firewall)",
            format!("start the service or check {}", v.endpoint),
        );
    }
    failure(Stage::Service, text.to_owned(), format!("see the {} logs", service.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_wordings_map_to_stages() {
        let cases = [
            (Service::Clickhouse, "error trying to connect: invalid peer certificate: UnknownIssuer", Stage::Tls, "does not trust"),
            (Service::Minio, "invalid certificate: CertExpired", Stage::Tls, "expired"),
            (Service::Registry, "invalid peer certificate: certificate expired: verification time 1, but certificate is not valid after 0", Stage::Tls, "expired"),
            (Service::Kafka, "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified", Stage::Tls, "handshake"),
            (Service::Kafka, "SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512", Stage::Authentication, "refused"),
            (Service::Clickhouse, "Code: 193, e.displayText() = DB::Exception: Wrong password for user nrt", Stage::Authentication, "refused"),
            (Service::Minio, "HTTP 403: SignatureDoesNotMatch", Stage::Authentication, "refused"),
            (Service::Minio, "HTTP 403: AccessDenied", Stage::Authorization, "not allowed"),
            (Service::Kafka, "Failed to resolve 'nohost:9092': Name or service not known", Stage::Dns, "resolve"),
            (Service::Registry, "tcp connect error: Connection refused (os error 111)", Stage::Connect, "nothing answers"),
            (Service::Clickhouse, "received corrupt message of type InvalidContentType", Stage::Tls, "disagree"),
        ];
        for (service, text, stage, cause) in cases {
            let f = classify(service, text);
            assert_eq!(f.stage, stage, "{text}");
            assert!(f.cause.contains(cause), "{text} -> {}", f.cause);
        }
        let f = classify(Service::Clickhouse, "invalid peer certificate: UnknownIssuer");
        assert_eq!(f.fix, "set NRT_CLICKHOUSE_CA_FILE to the PEM of the CA that signed it");
    }

    #[test]
    fn only_what_an_operator_must_fix_stops_a_start() {
        assert!(Stage::Tls.is_misconfiguration() && Stage::Authentication.is_misconfiguration());
        assert!(!Stage::Connect.is_misconfiguration() && !Stage::Dns.is_misconfiguration());
    }
}
