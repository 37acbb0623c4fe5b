//! `nrt doctor`: one line per dependency saying whether it answers, for people and scripts.

mod pipelines;

use std::time::Duration;

use clap::Args;

use crate::config::ServicesConfig;
use crate::probes::{Probe, Probes, Service};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub services: ServicesConfig,
    /// How long each probe may take, in milliseconds.
    #[arg(long, env = "NRT_DOCTOR_TIMEOUT_MS", default_value_t = 3000)]
    pub timeout_ms: u64,
    /// The pipeline as `nrt run` takes it (its topic must exist, or the Kafka user must be allowed to
    /// create it); with `--config`, the settings of the process the file's pipelines share.
    #[command(flatten)]
    pub pipeline: crate::config::PipelineConfig,
    /// A pipelines file: each pipeline's topic, subject and table are checked too.
    #[arg(long = "config", env = "NRT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

/// Prints the table, and under each failure its fix; `Ok(true)` when every service answered.
pub async fn run(args: &DoctorArgs) -> anyhow::Result<bool> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let pipelines = match &args.config {
        Some(path) => {
            let templates =
                crate::config::file::load(path, &args.pipeline).map_err(|e| crate::run::ConfigError(e.to_string()))?;
            // A pattern's instances are the topics it matches now.
            let existing = crate::kafka::topic_names(&args.services.kafka, timeout).await.unwrap_or_default();
            let mut instances = Vec::new();
            for t in &templates {
                instances.extend(t.instances(&existing).map_err(crate::run::ConfigError)?);
            }
            instances
        }
        None => Vec::new(),
    };
    // With a file, each pipeline's topic is checked below, not `--topic`'s.
    let topic = pipelines.is_empty().then(|| args.pipeline.topic.clone());
    let probes = Probes::new(&args.services, topic, timeout).all(&Service::ALL).await;
    print!("{}", render(&probes));
    let checks = pipelines::check(&args.services, &pipelines, timeout).await;
    if !checks.is_empty() {
        print!("{}", pipelines::render(&checks));
    }
    Ok(probes.iter().all(|p| p.ok) && checks.iter().all(|c| c.ok))
}

pub fn render(probes: &[Probe]) -> String {
    let mut out = format!(
        "{:<11} {:<5} {:<32} {}\n",
        "SERVICE", "STATE", "ENDPOINT", "DETAIL"
    );
    for p in probes {
        // DOWN: nothing answers (the pipeline waits for it); FAIL: it answers, but not to us.
        let state = match &p.failure {
            None => "up",
            Some(f) if f.stage.is_misconfiguration() || f.stage == crate::probes::Stage::Service => "FAIL",
            Some(_) => "DOWN",
        };
        out.push_str(&format!(
            "{:<11} {:<5} {:<32} {} ({} ms)\n",
            p.service.name(),
            state,
            p.endpoint,
            p.detail,
            p.elapsed.as_millis()
        ));
        if let Some(f) = &p.failure {
            out.push_str(&format!("{:<11} fix: {}\n", "", f.fix));
        }
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
                failure: None,
                elapsed: Duration::from_millis(12),
            },
            Probe {
                service: Service::Minio,
                endpoint: "http://127.0.0.1:9000".into(),
                ok: false,
                detail: "connect: nothing answers".into(),
                failure: Some(crate::probes::diagnose::classify(Service::Minio, "Connection refused")),
                elapsed: Duration::from_millis(1),
            },
        ];
        let text = render(&probes);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].starts_with("kafka       up    127.0.0.1:9092"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("DOWN") && lines[2].contains("connect: nothing answers"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[3], "            fix: start the service or check NRT_S3_ENDPOINT");
    }
}
