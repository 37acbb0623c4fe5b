//! How the records of each writer schema go into the table, learnt once per schema id and kept across
//! restarts of the KafkaReader, which decodes along them (each batch carries the plans of its rows, for
//! the ClickhouseWriter's INSERT). Learning a schema makes the table able to take it first (`follow`):
//! a schema id is known here only once its columns exist, so no row is ever written before its column.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::ddl::Ddl;
use super::follow::{follow, FollowError, Table};
use super::row::Mismatch;
use super::types::Server;
use crate::avro::Plan;
use crate::record::{Keep, RecordPlan};

/// The record the migrations of `schemas/clickhouse/` are written for: a table for it is made (and
/// kept) by them, as it always was, so `analytics.events_raw` stays exactly what it is.
pub const MIGRATED_RECORD: &str = "dev.nrt.events.v1.Event";

/// What records of one writer schema are, for the table.
#[derive(Debug, Clone)]
pub enum Fit {
    Rows(Arc<RecordPlan>),
    /// Not records of this table (no field for a key column, not a record, a schema nrt cannot
    /// read: no plan): each is dead-lettered.
    Unfit {
        plan: Option<Arc<Plan>>,
        why: Mismatch,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// ClickHouse did not answer (or refused a statement): nothing decided, ask again later.
    #[error("{0}")]
    Unreachable(String),
    /// The table cannot take the schema as it is (a field retyped beyond widening): an operator
    /// decides; its records wait.
    #[error("writer schema {schema_id}: {why}")]
    Holds { schema_id: u32, why: Mismatch },
}

pub struct Plans {
    ddl: Ddl,
    table: Table,
    server: RwLock<Option<Server>>,
    known: RwLock<HashMap<u32, Fit>>,
    /// What records keep besides their rows (by the lake's format).
    keep: Keep,
}

impl Plans {
    pub fn new(ddl: Ddl, table: Table) -> Self {
        Plans {
            ddl,
            table,
            server: RwLock::new(None),
            known: RwLock::new(HashMap::new()),
            keep: Keep::LINE,
        }
    }

    /// These plans, their records keeping what a lake of `format` is written from (and the line, which
    /// a route reads, when the table has one).
    pub fn for_lake(mut self, format: crate::lake::key::Format) -> Self {
        self.keep = Keep::for_lake(format, self.table.route.is_some());
        self
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn get(&self, schema_id: u32) -> Option<Fit> {
        self.known.read().ok()?.get(&schema_id).cloned()
    }

    /// Forgets every schema learnt: each is learnt again from the table as it is now, before its next
    /// record is decoded (after an operator changed the table to resolve a hold).
    pub fn forget(&self) {
        if let Ok(mut known) = self.known.write() {
            known.clear();
        }
    }

    /// Learns writer schema `schema_id`: compiles it, makes the table take it, remembers how.
    pub async fn learn(&self, schema_id: u32, schema: &apache_avro::Schema) -> Result<Fit, LearnError> {
        if let Some(fit) = self.get(schema_id) {
            return Ok(fit);
        }
        let plan = match Plan::new(schema) {
            Ok(plan) => plan,
            Err(e) => {
                let why = Mismatch::NotARecord(format!("schema nrt cannot read ({e})"));
                return Ok(self.remember(schema_id, Fit::Unfit { plan: None, why }));
            }
        };
        let server = self.server().await?;
        let name = match schema {
            apache_avro::Schema::Record(r) => r.name.fullname(None),
            _ => String::new(),
        };
        if name == MIGRATED_RECORD {
            crate::migrations::migrate(&self.ddl, &self.table.database, &self.table.table)
                .await
                .map_err(|e| LearnError::Unreachable(format!("migration {}: {}", e.statement, e.source)))?;
        }
        let fit = match follow(&self.ddl, server, &self.table, &plan, schema_id).await {
            Ok(rows) => Fit::Rows(Arc::new(
                RecordPlan::new(schema_id, plan, rows).keeping(self.keep),
            )),
            Err(FollowError::Server { statement, source }) => {
                return Err(LearnError::Unreachable(format!(
                    "clickhouse: {statement}: {source}"
                )))
            }
            Err(FollowError::Mismatch(why)) if why.holds() => {
                return Err(LearnError::Holds { schema_id, why })
            }
            Err(FollowError::Mismatch(why)) => Fit::Unfit {
                plan: Some(Arc::new(plan)),
                why,
            },
        };
        Ok(self.remember(schema_id, fit))
    }

    fn remember(&self, schema_id: u32, fit: Fit) -> Fit {
        if let Ok(mut known) = self.known.write() {
            known.insert(schema_id, fit.clone());
        }
        fit
    }

    async fn server(&self) -> Result<Server, LearnError> {
        if let Some(server) = self.server.read().ok().and_then(|s| *s) {
            return Ok(server);
        }
        let server = super::table::server(self.ddl.client())
            .await
            .map_err(|e| LearnError::Unreachable(format!("clickhouse: SELECT version(): {e}")))?;
        if let Ok(mut known) = self.server.write() {
            *known = Some(server);
        }
        Ok(server)
    }
}
