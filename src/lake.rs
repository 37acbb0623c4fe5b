//! The lake, the JSONL objects in S3, in one folder: its actor (`writer.rs`, the MinioWriter), its keys
//! (`key.rs`), and reading it back, hour by hour of the events' own `created_at`.
//!
//! An object sits under the hour of its first event (`dt=YYYY-MM-DD/hour=HH/`, see
//! `key.rs`); its other events may be of any hour, and `hours.rs` finds them. Each
//! event is counted in its own hour. An object's metadata says where its lines came from (`Origin`,
//! with `offsets.rs`).

pub mod hours;
pub mod key;
pub mod offsets;
pub mod parquet;
pub mod read;
pub mod writer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use self::read::{LineReader, ReadError};
use crate::config::{LakeArgs, ServicesConfig, TableArgs};
use crate::event::Millis;
use crate::record::{Record, Records};
use crate::s3::{ObjectStore, S3Error};

/// A usage error (the range, a name), as opposed to a service that failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<crate::config::SettingError> for UsageError {
    fn from(e: crate::config::SettingError) -> Self {
        UsageError(e.to_string())
    }
}

/// What `nrt reconcile` and `nrt replay` both take: the services, a range of hours, the lake's prefix.
#[derive(Debug, clap::Args)]
pub struct RangeArgs {
    #[command(flatten)]
    pub services: ServicesConfig,
    /// First hour, UTC (`2026-11-27T09`), by each event's own `created_at`.
    #[arg(long)]
    pub from: String,
    /// First hour not included, UTC (`--from 2026-11-27T09 --to 2026-11-27T12`: 09, 10 and 11).
    #[arg(long)]
    pub to: String,
    /// Where the objects are in the bucket (as `nrt run` wrote them).
    #[command(flatten)]
    pub lake: LakeArgs,
}

impl RangeArgs {
    /// The range, the services' settings and the ClickHouse table's, checked.
    pub fn check(&self, table: &TableArgs) -> Result<(Hour, Hour), UsageError> {
        let (from, to) = match (Hour::parse(&self.from), Hour::parse(&self.to)) {
            (Ok(f), Ok(t)) if f < t => (f, t),
            (Ok(_), Ok(_)) => return Err(UsageError("--to must be a later hour than --from".into())),
            (Err(e), _) => return Err(UsageError(format!("--from: {e}"))),
            (_, Err(e)) => return Err(UsageError(format!("--to: {e}"))),
        };
        self.services.validate()?;
        table.validate()?;
        Ok((from, to))
    }
}

/// Why a text is not an hour (`--from`, `--to`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HourError {
    #[error("'{0}' is not an hour like 2026-11-27T09 (UTC)")]
    Format(String),
    #[error("'{0}' is not the start of an hour")]
    NotOnTheHour(String),
}

/// An hour as hours since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hour(pub i64);

impl Hour {
    /// `2026-11-27T09` (also with `:00` or `:00:00`, and a trailing `Z`).
    pub fn parse(text: &str) -> Result<Hour, HourError> {
        let t = text.trim_end_matches('Z');
        let full = match t.len() {
            13 => format!("{t}:00:00"),
            16 => format!("{t}:00"),
            _ => t.to_owned(),
        };
        let at = NaiveDateTime::parse_from_str(&full, "%Y-%m-%dT%H:%M:%S")
            .map_err(|_| HourError::Format(text.to_owned()))?;
        let secs = at.and_utc().timestamp();
        if secs % 3600 != 0 {
            return Err(HourError::NotOnTheHour(text.to_owned()));
        }
        Ok(Hour(secs / 3600))
    }

    pub fn of_millis(ms: i64) -> Hour {
        Hour(ms.div_euclid(3_600_000))
    }

    pub fn start(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.0.checked_mul(3600)?, 0)
    }

}

impl std::fmt::Display for Hour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.start() {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H")),
            None => write!(f, "hour {}", self.0),
        }
    }
}

/// Why an object's metadata does not say where its lines came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("no {0} in the object's metadata")]
    Missing(&'static str),
    #[error("{name} '{text}' is not a number")]
    NotANumber { name: &'static str, text: String },
    #[error("nrt-partition out of range")]
    PartitionOutOfRange,
    #[error(transparent)]
    Offsets(#[from] offsets::BreaksError),
}

/// Where an object's lines came from, as the pipeline recorded it in the object's metadata (see
/// `minio_writer::object_meta`): the partition, each line's offset, and when the batch was ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub partition: i32,
    pub offsets: Vec<i64>,
    /// `None` for objects written before it was recorded.
    pub ingested_at: Option<Millis>,
}

impl Origin {
    /// From the object's metadata (names without `x-amz-meta-`) and, when the offset list did not fit
    /// in it, its sidecar's text (`sidecar_key`). Objects of an older layout (no offset list) get
    /// consecutive offsets.
    pub fn of(meta: &HashMap<String, String>, sidecar: Option<&str>, lines: usize) -> Result<Origin, OriginError> {
        let field = |name: &str| meta.get(name).map(String::as_str);
        let number = |name: &'static str| -> Result<i64, OriginError> {
            let text = field(name).ok_or(OriginError::Missing(name))?;
            text.parse().map_err(|_| OriginError::NotANumber {
                name,
                text: text.to_owned(),
            })
        };
        let partition = i32::try_from(number("nrt-partition")?).map_err(|_| OriginError::PartitionOutOfRange)?;
        let first = number("nrt-first-offset")?;
        let breaks = sidecar.or(field("nrt-offsets")).unwrap_or_default();
        Ok(Origin {
            partition,
            offsets: offsets::decode(first, lines, breaks)?,
            ingested_at: number("nrt-ingested-at").ok().map(Millis),
        })
    }
}

/// The metadata field naming an object's sidecar: `1` (the older layout: `<key>.offsets`, which a
/// second writer could replace) or the digest its name carries (`<key>.<digest>.offsets`).
pub const SIDECAR_META: &str = "nrt-offsets-sidecar";

/// The key of the sidecar holding `key`'s offset list, when its metadata says it has one.
pub fn sidecar_key(key: &str, meta: &HashMap<String, String>) -> Option<String> {
    match meta.get(SIDECAR_META)?.as_str() {
        "1" => Some(key::sidecar(key, None)),
        digest if !digest.is_empty() && digest.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(key::sidecar(key, Some(digest)))
        }
        _ => None,
    }
}

/// An object as `nrt replay` and `nrt reconcile` read it.
pub struct Object {
    pub body: Body,
    pub meta: HashMap<String, String>,
    pub origin: Origin,
}

/// What an object holds, by its key's format.
pub enum Body {
    /// JSONL: a record per line.
    Lines(Vec<u8>),
    Parquet(parquet::read::File),
}

impl Object {
    /// The object under `key`, with its sidecar's offsets; None when a reference names it but it is not
    /// there (its writer stopped between the two: the batch was not committed, and is written again).
    pub async fn fetch(store: &ObjectStore, key: &str, timeout: Duration) -> Result<Option<Object>, LakeError> {
        let Some((bytes, meta)) = store.get_if_present(key, timeout).await? else {
            return Ok(None);
        };
        let body = match key::Format::of_key(key).unwrap_or_default() {
            key::Format::Jsonl => Body::Lines(bytes),
            key::Format::Parquet => match parquet::read::File::open(bytes.into()) {
                Ok(file) => Body::Parquet(file),
                Err(why) => return Err(LakeError::Unreadable { key: key.to_owned(), why }),
            },
        };
        let sidecar = match sidecar_key(key, &meta) {
            Some(sidecar) => Some(String::from_utf8_lossy(&store.get(&sidecar, timeout).await?).into_owned()),
            None => None,
        };
        let count = match &body {
            Body::Lines(lines) => lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count(),
            Body::Parquet(file) => file.rows(),
        };
        let origin = Origin::of(&meta, sidecar.as_deref(), count).map_err(|source| LakeError::Meta {
            key: key.to_owned(),
            source,
        })?;
        Ok(Some(Object { body, meta, origin }))
    }

    /// Its lines or rows read back into the records the pipeline made of them (`read.rs`).
    pub async fn records(&self, key: &str, reader: &mut LineReader) -> Result<Records, ReadError> {
        // Objects written before `nrt-ingested-at` was recorded hold events, which have their own time.
        let ingested_at = self.origin.ingested_at.map_or(0, |m| m.0);
        match &self.body {
            Body::Lines(lines) => reader.read(key, lines, &self.meta, &self.origin.offsets, ingested_at).await,
            Body::Parquet(file) => reader.read_parquet(key, file, &self.origin.offsets, ingested_at).await,
        }
    }
}

/// What the lake holds for one hour.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LakeHour {
    pub lines: u64,
    pub ids: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{key}: {source}")]
    Meta { key: String, source: OriginError },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("hour {0} is out of range")]
    Range(Hour),
    /// Not a file of its format (a Parquet object that does not open).
    #[error("{key}: {why}")]
    Unreadable { key: String, why: String },
}

/// What makes a record one in its table, for counting distinct ones: the table's sorting-key columns
/// but the event time's (the hours already split by it), as `uniqExact` counts them in ClickHouse.
/// Meta columns come from the object's metadata, the others from the line's field of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub columns: Vec<String>,
}

impl Identity {
    pub fn new(key: &[String], time: &str) -> Identity {
        let rest: Vec<String> = key.iter().filter(|c| *c != time).cloned().collect();
        Identity {
            columns: if rest.is_empty() { key.to_vec() } else { rest },
        }
    }

    /// 128 bits of a digest of the record's key columns.
    pub fn of(&self, r: &Record<'_>, origin: &Origin) -> u128 {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        let mut line: Option<serde_json::Value> = None;
        for column in &self.columns {
            match column.as_str() {
                "kafka_partition" => digest.update(origin.partition.to_le_bytes()),
                "kafka_offset" => digest.update(r.offset.to_le_bytes()),
                "ingested_at" => digest.update((origin.ingested_at.map_or(r.time, |m| m.0) / 1000).to_le_bytes()),
                field => {
                    let json = line.get_or_insert_with(|| serde_json::from_slice(r.line).unwrap_or_default());
                    digest.update(json.get(field).map(|v| v.to_string()).unwrap_or_default());
                }
            }
            digest.update([0xff]);
        }
        let hash = digest.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        u128::from_le_bytes(first)
    }
}

/// Counts the records of every hour in `from..to` (lines, and distinct `identity`s), each line read
/// back as `reader` reads it. Holds one object and the ids of the hours being counted at a time.
pub async fn count(
    store: &ObjectStore,
    prefix: &str,
    (from, to): (Hour, Hour),
    reader: &mut LineReader,
    identity: &Identity,
) -> Result<BTreeMap<Hour, LakeHour>, LakeError> {
    let mut ids: BTreeMap<Hour, (u64, HashSet<u128>)> = (from.0..to.0).map(|h| (Hour(h), Default::default())).collect();
    for (_, key) in hours::objects(store, prefix, from, to).await? {
        let Some(object) = Object::fetch(store, &key, Duration::from_secs(60)).await? else {
            continue;
        };
        for r in object.records(&key, reader).await?.iter() {
            if let Some((lines, seen)) = ids.get_mut(&Hour::of_millis(r.time)) {
                *lines += 1;
                seen.insert(identity.of(&r, &object.origin));
            }
        }
    }
    Ok(ids
        .into_iter()
        .map(|(h, (lines, seen))| (h, LakeHour { lines, ids: seen.len() as u64 }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_identity_is_its_key_but_the_event_time() {
        let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let events = Identity::new(&owned(&["created_at", "event_id"]), "created_at");
        assert_eq!(events.columns, ["event_id"]);
        assert_eq!(Identity::new(&owned(&["at"]), "at").columns, ["at"], "nothing but the time: the time");
        let origin = Origin {
            partition: 3,
            offsets: Vec::new(),
            ingested_at: Some(Millis(7_000)),
        };
        let record = |line: &'static str, offset: i64| Record {
            offset,
            time: 0,
            schema_id: 1,
            key: b"",
            line: line.as_bytes(),
            row: b"",
            datum: b"",
        };
        let (a, a_again, b) = (
            record(r#"{"event_id":"a","created_at":"2026-01-01T10:00:00Z"}"#, 1),
            record(r#"{"event_id":"a","created_at":"2026-01-01T10:00:01Z"}"#, 2),
            record(r#"{"event_id":"b","created_at":"2026-01-01T10:00:00Z"}"#, 1),
        );
        assert_eq!(events.of(&a, &origin), events.of(&a_again, &origin));
        assert_ne!(events.of(&a, &origin), events.of(&b, &origin));
        let coordinates = Identity::new(&owned(&["kafka_partition", "kafka_offset"]), "created_at");
        assert_eq!(coordinates.of(&a, &origin), coordinates.of(&b, &origin), "same offset");
        assert_ne!(coordinates.of(&a, &origin), coordinates.of(&a_again, &origin));
        let elsewhere = Origin { partition: 4, ..origin.clone() };
        assert_ne!(coordinates.of(&a, &origin), coordinates.of(&a, &elsewhere));
    }

    #[test]
    fn hours_parse_in_every_spelling_and_print_back() {
        let h = Hour::parse("2026-11-27T09").unwrap_or_else(|e| panic!("{e}"));
        for text in ["2026-11-27T09:00", "2026-11-27T09:00:00", "2026-11-27T09:00:00Z"] {
            assert_eq!(Hour::parse(text), Ok(h), "{text}");
        }
        assert_eq!(h.to_string(), "2026-11-27T09");
        assert_eq!(key::hour_dir("p/", h).as_deref(), Some("p/dt=2026-11-27/hour=09/"));
        assert_eq!(Hour::of_millis(h.0 * 3_600_000 + 3_599_999), h);
        assert_eq!(Hour::of_millis(h.0 * 3_600_000 - 1), Hour(h.0 - 1));
        assert!(Hour::parse("2026-11-27T09:30").is_err());
        assert!(Hour::parse("yesterday").is_err());
        assert!(Hour::parse("2026-13-01T00").is_err());
    }
}
