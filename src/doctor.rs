//! `nrt doctor`: one line per dependency saying whether it answers, for people and scripts.

use std::time::Duration;

use clap::Args;

use crate::config::ServicesConfig;
use crate::probes::{probe_all, Probe};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub services: ServicesConfig,
    /// How long each probe may take, in milliseconds.
    #[arg(long, env = "NRT_DOCTOR_TIMEOUT_MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// Prints the table; `Ok(true)` when every service answered.
pub async fn run(args: &DoctorArgs) -> anyhow::Result<bool> {
    let probes = probe_all(&args.services, Duration::from_millis(args.timeout_ms)).await?;
    print!("{}", render(&probes));
    Ok(probes.iter().all(|p| p.ok))
}

pub fn render(probes: &[Probe]) -> String {
    let mut out = format!(
        "{:<11} {:<5} {:<32} {}\n",
        "SERVICE", "STATE", "ENDPOINT", "DETAIL"
    );
    for p in probes {
        let state = if p.ok { "up" } else { "DOWN" };
        out.push_str(&format!(
            "{:<11} {:<5} {:<32} {} ({} ms)\n",
            p.service.name(),
            state,
            p.endpoint,
            p.detail,
            p.elapsed.as_millis()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Service;

    #[test]
    fn render_names_every_service_and_its_state() {
        let probes = [
            Probe {
                service: Service::Kafka,
                endpoint: "127.0.0.1:9092".into(),
                ok: true,
                detail: "1 broker(s), 0 topic(s)".into(),
                elapsed: Duration::from_millis(12),
            },
            Probe {
                service: Service::Minio,
                endpoint: "http://127.0.0.1:9000".into(),
                ok: false,
                detail: "connection refused".into(),
                elapsed: Duration::from_millis(1),
            },
        ];
        let text = render(&probes);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("kafka       up    127.0.0.1:9092"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("DOWN") && lines[2].contains("connection refused"),
            "{}",
            lines[2]
        );
    }
}
