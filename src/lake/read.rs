//! An object's lines read back into the records the pipeline made of them: each line written as the
//! Avro datum of its writer schema (`avro::encode::from_json`, the lake's mapping backwards), then
//! decoded as the KafkaReader decodes (`Records::decode`): the same row, the same event time. What
//! `nrt replay` writes and `nrt reconcile` counts, for any record type.
//!
//! Which schema a line was written with: one of the ids its object names (`nrt-schema-ids`), the one
//! whose decoding gives the line back (byte for byte; as JSON values for lines an older nrt wrote with
//! another spelling of a number). Schemas of one
//! subject differ by fields, and a field the line lacks is read as its default, which a decoding writes
//! out again, so only the line's own writer gives it back — or one that gives the same row. Objects
//! from before the ids were recorded hold events only: `events.v2`, then `v1`, built in.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;

use crate::avro::encode::from_json;
use crate::avro::Plan;
use crate::clickhouse::plans::{Fit, Plans};
use crate::clickhouse::row::{RowPlan, Scratch};
use crate::clickhouse::table::columns_of;
use crate::clickhouse::types::Server;
use crate::record::{RecordPlan, Records};
use crate::registry::RegistryClient;

/// The metadata field naming the writer schema ids of an object's lines.
pub const SCHEMA_IDS_META: &str = "nrt-schema-ids";

/// Ids standing for the built-in events schemas in objects that name none (never a registry's: ids
/// count up from 1).
const LEGACY_V2: u32 = u32::MAX;
const LEGACY_V1: u32 = u32::MAX - 1;

/// How the rows of each writer schema are planned.
pub enum Rows {
    /// Into the table, which follows the schema as in `nrt run` (created, widened): for writing.
    Table(Box<Plans>),
    /// For the columns a table made from the schema would have; nothing is touched: for counting.
    /// The event-time field as `NRT_EVENT_TIME_FIELD`.
    Count { time: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{key}, line {line}: {why}")]
    Line { key: String, line: usize, why: String },
    #[error("writer schema {id}: {why}")]
    Schema { id: u32, why: String },
}

pub struct LineReader {
    registry: Arc<RegistryClient>,
    rows: Rows,
    known: HashMap<u32, Arc<RecordPlan>>,
    scratch: Scratch,
    avro: Vec<u8>,
}

impl LineReader {
    pub fn new(registry: Arc<RegistryClient>, rows: Rows) -> Self {
        LineReader {
            registry,
            rows,
            known: HashMap::new(),
            scratch: Scratch::default(),
            avro: Vec::new(),
        }
    }

    /// The records of object `key`'s `lines` (newline-separated), line `i` at `offsets[i]`. `meta` is
    /// the object's metadata; `ingested_at` (ms) the event time of a schema without a timestamp field.
    pub async fn read(
        &mut self,
        key: &str,
        lines: &[u8],
        meta: &HashMap<String, String>,
        offsets: &[i64],
        ingested_at: i64,
    ) -> Result<Records, ReadError> {
        let mut ids: Vec<u32> = match meta.get(SCHEMA_IDS_META) {
            Some(text) => text
                .split(',')
                .map(|id| id.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|_| ReadError::Line {
                    key: key.to_owned(),
                    line: 0,
                    why: format!("{SCHEMA_IDS_META} '{text}' is not a list of ids"),
                })?,
            None => vec![LEGACY_V2, LEGACY_V1],
        };
        let mut records = Records::default();
        let lines = lines.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        for (n, (line, offset)) in lines.zip(offsets).enumerate() {
            let fail = |why: String| ReadError::Line {
                key: key.to_owned(),
                line: n + 1,
                why,
            };
            let json: serde_json::Value = serde_json::from_slice(line).map_err(|e| fail(e.to_string()))?;
            let mut why = String::from("no writer schema named");
            let mut found = None;
            for (k, &id) in ids.iter().enumerate() {
                let plan = self.plan(id).await?;
                self.avro.clear();
                if let Err(e) = from_json(&plan.plan, &json, &mut self.avro) {
                    why = format!("writer schema {id}: {e}");
                    continue;
                }
                let at = (*offset, &b""[..]);
                if let Err(e) = records.decode(&plan, at, &self.avro, ingested_at, &mut self.scratch) {
                    why = format!("writer schema {id}: {e}");
                    continue;
                }
                let back = records.last().map(|r| r.line);
                let same_value = || back.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok()).as_ref() == Some(&json);
                if back == Some(line) || same_value() {
                    found = Some(k);
                    break;
                }
                records.truncate(records.len() - 1);
                why = format!("writer schema {id} reads it as another line");
            }
            match found {
                // Most lines of an object share a schema: its writer is tried first for the next.
                Some(k) => ids[..=k].rotate_right(1),
                None => return Err(fail(why)),
            }
        }
        Ok(records)
    }

    /// The records of Parquet object `key` (`lake::parquet::read`), row `i` at `offsets[i]`: each row
    /// made the datum of its writer schema again and decoded as the pipeline decoded it.
    pub async fn read_parquet(
        &mut self,
        key: &str,
        file: &crate::lake::parquet::read::File,
        offsets: &[i64],
        ingested_at: i64,
    ) -> Result<Records, ReadError> {
        use crate::lake::parquet::read::RowReader;
        let fail = |line: usize, why: String| ReadError::Line {
            key: key.to_owned(),
            line,
            why,
        };
        let ids = file.row_schemas().map_err(|why| fail(0, why))?;
        let mut merged = Vec::new();
        for id in file.column_schemas().map_err(|why| fail(0, why))? {
            merged.push(self.plan(id).await?);
        }
        let rows = RowReader::new(&merged.iter().map(|p| &p.plan).collect::<Vec<_>>());
        let mut records = Records::default();
        let mut n = 0;
        for batch in &file.batches {
            let root = arrow_array::StructArray::from(batch.clone());
            for row in 0..batch.num_rows() {
                let (Some(&id), Some(&offset)) = (ids.get(n), offsets.get(n)) else {
                    return Err(fail(n + 1, "more rows than its metadata names".into()));
                };
                n += 1;
                let plan = self.plan(id).await?;
                let json = rows.row(&root, row, &plan.plan).map_err(|why| fail(n, why))?;
                self.avro.clear();
                from_json(&plan.plan, &json, &mut self.avro).map_err(|e| fail(n, format!("writer schema {id}: {e}")))?;
                records
                    .decode(&plan, (offset, &b""[..]), &self.avro, ingested_at, &mut self.scratch)
                    .map_err(|e| fail(n, format!("writer schema {id}: {e}")))?;
            }
        }
        Ok(records)
    }

    /// The plan of writer schema `id`, fetched and planned once.
    async fn plan(&mut self, id: u32) -> Result<Arc<RecordPlan>, ReadError> {
        if let Some(plan) = self.known.get(&id) {
            return Ok(plan.clone());
        }
        let fail = |why: String| ReadError::Schema { id, why };
        let schema = match id {
            LEGACY_V2 | LEGACY_V1 => {
                let text = if id == LEGACY_V2 { crate::event::SCHEMA_V2 } else { crate::event::SCHEMA_V1 };
                Arc::new(Schema::parse_str(text).map_err(|e| fail(e.to_string()))?)
            }
            _ => self.registry.schema_by_id(id).await.map_err(|e| fail(e.to_string()))?,
        };
        let plan = match &self.rows {
            Rows::Table(plans) => match plans.learn(id, &schema).await.map_err(|e| fail(e.to_string()))? {
                Fit::Rows(plan) => plan,
                Fit::Unfit { why, .. } => return Err(fail(format!("the table cannot take it: {why}"))),
            },
            Rows::Count { time } => {
                let plan = Plan::new(&schema).map_err(|e| fail(e.to_string()))?;
                // The wider range of the two servers': no line of the lake is refused for its time.
                let server = Server::CURRENT;
                let columns = columns_of(&plan, server).map_err(|e| fail(e.to_string()))?;
                let rows = RowPlan::new(&plan, &columns, server, time.as_deref()).map_err(|e| fail(e.to_string()))?;
                Arc::new(RecordPlan::new(id, plan, rows))
            }
        };
        self.known.insert(id, plan.clone());
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistryConfig;
    use rand::SeedableRng;
    use std::time::Duration;

    /// A reader that never reaches a registry: plans come from `schemas` (id, text) put in first.
    fn reader(schemas: &[(u32, &str)]) -> LineReader {
        let registry = RegistryClient::new(&RegistryConfig::at("http://127.0.0.1:9"), Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut reader = LineReader::new(Arc::new(registry), Rows::Count { time: None });
        for (id, text) in schemas {
            let schema = Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
            let plan = Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
            let columns = columns_of(&plan, Server::CURRENT).unwrap_or_else(|e| panic!("{e}"));
            let rows = RowPlan::new(&plan, &columns, Server::CURRENT, None).unwrap_or_else(|e| panic!("{e}"));
            reader.known.insert(*id, Arc::new(RecordPlan::new(*id, plan, rows)));
        }
        reader
    }

    /// Records of `ids` in turn (runs of 5), random datums decoded as the consumer decodes them.
    async fn made(reader: &mut LineReader, ids: &[u32], n: i64) -> Records {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut records, mut scratch) = (Records::default(), Scratch::default());
        for i in 0..n {
            let plan = reader.plan(ids[(i / 5) as usize % ids.len()]).await.unwrap_or_else(|e| panic!("{e}"));
            let mut datum = Vec::new();
            crate::avro::random::datum(&plan.plan, &mut rng, 1_767_261_600_000 + i * 1_000, &mut datum);
            records
                .decode(&plan, (100 + 2 * i, b""), &datum, 0, &mut scratch)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        records
    }

    async fn read_back(reader: &mut LineReader, made: &Records, ids: Option<&str>) -> Result<Records, ReadError> {
        let offsets: Vec<i64> = made.iter().map(|r| r.offset).collect();
        let meta: HashMap<String, String> = ids.map(|i| (SCHEMA_IDS_META.to_owned(), i.to_owned())).into_iter().collect();
        reader.read("k.jsonl", made.jsonl(), &meta, &offsets, 0).await
    }

    /// Events of both versions in one object that names no ids (the older layout): every line comes
    /// back with its offset and event time; a line `v2` gives back is `v2`'s row, any other `v1`'s.
    #[tokio::test]
    async fn events_of_an_object_without_ids_come_back_as_they_were_made() {
        let mut reader = reader(&[]);
        let made = made(&mut reader, &[LEGACY_V1, LEGACY_V2], 400).await;
        let back = read_back(&mut reader, &made, None).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.len(), made.len());
        let mut by_v2 = 0;
        for (a, b) in made.iter().zip(back.iter()) {
            assert_eq!((a.line, a.time, a.offset), (b.line, b.time, b.offset));
            if a.schema_id == b.schema_id {
                assert_eq!(a.row, b.row);
            }
            by_v2 += usize::from(b.schema_id == LEGACY_V2);
        }
        // v2 is tried first, and gives back every line whose extra fields are null, v1's included.
        assert!(by_v2 > 200, "{by_v2}");
    }

    /// A schema that adds a field with a non-null default reads an older writer's line as another
    /// line (the default written out): never taken for it, whatever order the ids come in.
    #[tokio::test]
    async fn a_line_is_read_by_the_schema_that_gives_it_back() {
        let old = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"m","type":{"type":"map","values":"long"}}]}"#;
        let new = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"m","type":{"type":"map","values":"long"}},{"name":"c","type":"int","default":7}]}"#;
        let mut reader = reader(&[(1, old), (2, new)]);
        let made = made(&mut reader, &[1, 2], 100).await;
        for ids in ["2,1", "1,2"] {
            let back = read_back(&mut reader, &made, Some(ids)).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back.len(), made.len());
            // Record by record (the plans tried and dropped stay listed: `Records` equality would differ).
            for (i, (a, b)) in made.iter().zip(back.iter()).enumerate() {
                assert!(a == b, "ids {ids}, record {i}: schema {} read as {}", a.schema_id, b.schema_id);
            }
        }
        // Only the newer one named: the older writer's lines are not its lines.
        let e = read_back(&mut reader, &made, Some("2")).await.map(|r| r.len());
        assert!(
            matches!(&e, Err(ReadError::Line { line: 1, why, .. }) if why.contains("another line")),
            "{e:?}"
        );
        let e = read_back(&mut reader, &made, Some("1,x")).await.map(|r| r.len());
        assert!(matches!(e, Err(ReadError::Line { line: 0, .. })), "{e:?}");
    }
}
