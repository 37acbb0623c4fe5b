//! `nrt doctor --config`: beside the services, what each pipeline of a pipelines file needs of them:
//! its topic (present, or creatable by this user), its producer's subject in the registry under its
//! subject strategy (registered, or not yet: its producer registers it) and its table (present, or
//! made from the first writer schema).

use std::time::Duration;

use crate::config::file::Pipeline;
use crate::config::ServicesConfig;
use crate::probes::{Probes, Service};
use crate::registry::{RegistryClient, SubjectStrategy};

/// Confluent's "subject not found".
const SUBJECT_NOT_FOUND: u32 = 40401;

/// One check of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub pipeline: String,
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The checks of every pipeline, in the file's order.
pub async fn check(services: &ServicesConfig, pipelines: &[Pipeline], timeout: Duration) -> Vec<Check> {
    let registry = RegistryClient::new(&services.registry, timeout);
    let clickhouse = crate::clickhouse::server_client(&services.clickhouse);
    let mut out = Vec::new();
    for p in pipelines {
        let check = |what, ok, detail: String| Check {
            pipeline: p.name.clone(),
            what,
            ok,
            detail,
        };
        let topic = Probes::new(services, Some(p.config.topic.clone()), timeout)
            .all(&[Service::Kafka])
            .await;
        for probe in topic {
            let detail = match &probe.failure {
                Some(f) => format!("{}: {} (fix: {})", p.config.topic, probe.detail, f.fix),
                None => probe.detail.clone(),
            };
            out.push(check("topic", probe.ok, detail));
        }
        out.push(match &registry {
            Err(e) => check("subject", false, e.to_string()),
            Ok(client) => {
                let (ok, detail) = subject(client, &p.config).await;
                check("subject", ok, detail)
            }
        });
        let database = &services.clickhouse.database;
        let table = &p.config.table.table(database).table;
        // A table per tenant: the template is checked; the tenants' tables are made from it.
        let per_tenant = p.config.table.route().map_or(String::new(), |r| {
            format!(" (the template of a table per `{}`: {})", r.field, p.config.table.clickhouse_table)
        });
        out.push(match &clickhouse {
            Err(e) => check("table", false, e.to_string()),
            Ok(client) => match crate::clickhouse::table::columns(client, database, table).await {
                Ok(columns) if columns.is_empty() => check(
                    "table",
                    true,
                    format!("{database}.{table}{per_tenant}: absent (made from the first writer schema at start)"),
                ),
                Ok(columns) => check(
                    "table",
                    true,
                    format!("{database}.{table}{per_tenant}: present, {} columns", columns.len()),
                ),
                Err(e) => check("table", false, format!("{database}.{table}: {e}")),
            },
        });
    }
    out
}

/// The producer's subject under the pipeline's strategy: registered, or not yet; under a record
/// strategy also the other subjects of the topic the registry holds (other record types in it).
async fn subject(client: &RegistryClient, config: &crate::config::PipelineConfig) -> (bool, String) {
    let (topic, strategy) = (&config.topic, config.subject_strategy);
    let named = config
        .producer_schema()
        .map_err(|e| e.to_string())
        .and_then(|text| apache_avro::Schema::parse_str(&text).map_err(|e| format!("the producer's schema: {e}")))
        .and_then(|schema| strategy.subject(topic, &schema).map_err(|e| e.to_string()));
    let subject = match named {
        Ok(subject) => subject,
        Err(e) => return (false, e),
    };
    let mut out = match client.latest(&subject).await {
        Ok(r) => (true, format!("{subject}: version {}, schema id {}", r.version, r.id)),
        Err(e) if e.error_code() == Some(SUBJECT_NOT_FOUND) => (
            true,
            format!("{subject}: not registered yet (its producer registers it; a consumer waits for it)"),
        ),
        Err(e) => return (false, format!("{subject}: {e}")),
    };
    if strategy != SubjectStrategy::Topic {
        match client.subjects().await {
            Ok(all) => {
                let others: Vec<&String> = all.iter().filter(|s| **s != subject && strategy.may_hold(topic, s)).collect();
                if !others.is_empty() && others.len() <= 10 {
                    let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
                    out.1.push_str(&format!("; other subjects ({}): {}", strategy.name(), names.join(", ")));
                } else if !others.is_empty() {
                    out.1.push_str(&format!("; {} other subjects ({})", others.len(), strategy.name()));
                }
            }
            Err(e) => return (false, format!("{subject}: listing subjects: {e}")),
        }
    }
    out
}

pub fn render(checks: &[Check]) -> String {
    let mut out = format!("\n{:<16} {:<8} {:<5} {}\n", "PIPELINE", "CHECK", "STATE", "DETAIL");
    for c in checks {
        let state = if c.ok { "ok" } else { "FAIL" };
        out.push_str(&format!("{:<16} {:<8} {:<5} {}\n", c.pipeline, c.what, state, c.detail));
    }
    out
}
