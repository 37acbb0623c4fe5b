//! Which certificate a TLS failure is about: the leaf the server presents, read with verification off
//! (for this description only, never for traffic), so `nrt doctor` can say whose certificate expired or
//! who issued the one it does not trust.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::X509NameRef;

/// `host:port` of an `http(s)://` URL or a Kafka broker list (its first broker).
pub fn address(endpoint: &str) -> Option<(String, u16)> {
    if endpoint.contains("://") {
        let url = reqwest::Url::parse(endpoint).ok()?;
        return Some((url.host_str()?.to_owned(), url.port_or_known_default()?));
    }
    let first = endpoint.split(',').next()?.trim();
    let (host, port) = first.rsplit_once(':')?;
    Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
}

/// "CN=localhost, issued by O=…, CN=…, not after Jan  1 00:00:00 2021 GMT", or `None` if the server
/// cannot be reached or shows no certificate.
pub async fn describe(host: String, port: u16) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(3);
        let addr = (host.as_str(), port).to_socket_addrs().ok()?.next()?;
        let tcp = TcpStream::connect_timeout(&addr, timeout).ok()?;
        tcp.set_read_timeout(Some(timeout)).ok()?;
        tcp.set_write_timeout(Some(timeout)).ok()?;
        let mut builder = SslConnector::builder(SslMethod::tls_client()).ok()?;
        builder.set_verify(SslVerifyMode::NONE);
        let mut config = builder.build().configure().ok()?;
        config.set_verify_hostname(false);
        let stream = config.connect(&host, tcp).ok()?;
        let cert = stream.ssl().peer_certificate()?;
        Some(format!(
            "{}, issued by {}, not after {}",
            name(cert.subject_name()),
            name(cert.issuer_name()),
            cert.not_after()
        ))
    })
    .await
    .ok()
    .flatten()
}

fn name(n: &X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = String::from_utf8_lossy(e.data().as_slice()).into_owned();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn addresses_of_urls_and_broker_lists() {
        let a = |s: &str| address(s);
        assert_eq!(a("https://ch.example.com:8443/x"), Some(("ch.example.com".into(), 8443)));
        assert_eq!(a("https://s3.amazonaws.com"), Some(("s3.amazonaws.com".into(), 443)));
        assert_eq!(a("b1:9094, b2:9094"), Some(("b1".into(), 9094)));
        assert_eq!(a("[::1]:9094"), Some(("::1".into(), 9094)));
        assert_eq!(a("no-port"), None);
    }
}
