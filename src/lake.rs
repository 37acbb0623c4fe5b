//! Reading the lake (the JSONL objects in S3) back, hour by hour of the events' own `created_at`.
//!
//! An object sits under the hour of its first event (`dt=YYYY-MM-DD/hour=HH/`, see
//! `minio_writer::object_key`); its other events may be of any hour, and `hours.rs` finds them. Each
//! event is counted in its own hour. An object's metadata says where its lines came from (`Origin`,
//! with `offsets.rs`).

pub mod hours;
pub mod offsets;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::config::ServicesConfig;
use crate::event::{Event, Millis};
use crate::s3::{ObjectStore, S3Error};

/// A usage error (the range, a name), as opposed to a service that failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

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
    /// Key prefix of the objects in the bucket (as `nrt run`).
    #[arg(id = "s3-prefix", long = "s3-prefix", env = "NRT_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
}

impl RangeArgs {
    /// The range, the services' settings and the ClickHouse table name, checked.
    pub fn check(&self, table: &str) -> Result<(Hour, Hour), UsageError> {
        let (from, to) = match (Hour::parse(&self.from), Hour::parse(&self.to)) {
            (Ok(f), Ok(t)) if f < t => (f, t),
            (Ok(_), Ok(_)) => return Err(UsageError("--to must be a later hour than --from".into())),
            (Err(e), _) => return Err(UsageError(format!("--from: {e}"))),
            (_, Err(e)) => return Err(UsageError(format!("--to: {e}"))),
        };
        self.services.validate().map_err(UsageError)?;
        if !crate::config::is_plain_name(table) {
            return Err(UsageError(format!("the table '{table}' is not a plain table name")));
        }
        Ok((from, to))
    }
}

/// An hour as hours since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hour(pub i64);

impl Hour {
    /// `2026-11-27T09` (also with `:00` or `:00:00`, and a trailing `Z`).
    pub fn parse(text: &str) -> Result<Hour, String> {
        let t = text.trim_end_matches('Z');
        let full = match t.len() {
            13 => format!("{t}:00:00"),
            16 => format!("{t}:00"),
            _ => t.to_owned(),
        };
        let at = NaiveDateTime::parse_from_str(&full, "%Y-%m-%dT%H:%M:%S")
            .map_err(|_| format!("'{text}' is not an hour like 2026-11-27T09 (UTC)"))?;
        let secs = at.and_utc().timestamp();
        if secs % 3600 != 0 {
            return Err(format!("'{text}' is not the start of an hour"));
        }
        Ok(Hour(secs / 3600))
    }

    pub fn of_millis(ms: i64) -> Hour {
        Hour(ms.div_euclid(3_600_000))
    }

    pub fn start(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.0.checked_mul(3600)?, 0)
    }

    /// The key prefix of the objects written under this hour.
    pub fn prefix(self, prefix: &str) -> Option<String> {
        let t = self.start()?;
        Some(format!("{prefix}dt={}/hour={}/", t.format("%Y-%m-%d"), t.format("%H")))
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

/// Whether `key` is one of the lake's JSONL objects (not a sidecar or anything else under the prefix).
pub fn is_object(key: &str) -> bool {
    key.ends_with(".jsonl")
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
    pub fn of(meta: &HashMap<String, String>, sidecar: Option<&str>, lines: usize) -> Result<Origin, String> {
        let field = |name: &str| meta.get(name).map(String::as_str);
        let number = |name: &str| -> Result<i64, String> {
            let text = field(name).ok_or_else(|| format!("no {name} in the object's metadata"))?;
            text.parse().map_err(|_| format!("{name} '{text}' is not a number"))
        };
        let partition = i32::try_from(number("nrt-partition")?).map_err(|_| "nrt-partition out of range".to_owned())?;
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
        "1" => Some(format!("{key}.offsets")),
        digest if !digest.is_empty() && digest.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(format!("{key}.{digest}.offsets"))
        }
        _ => None,
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
    #[error("{key}, line {line}: not an event ({message})")]
    Line { key: String, line: usize, message: String },
    #[error("hour {0} is out of range")]
    Range(Hour),
}

/// Counts the events of every hour in `from..to` (lines, and distinct event ids). Holds one object and
/// the ids of the hours being counted at a time.
pub async fn count(store: &ObjectStore, prefix: &str, from: Hour, to: Hour) -> Result<BTreeMap<Hour, LakeHour>, LakeError> {
    let mut ids: BTreeMap<Hour, (u64, HashSet<u128>)> = (from.0..to.0).map(|h| (Hour(h), Default::default())).collect();
    for (_, key) in hours::objects(store, prefix, from, to).await? {
        // A reference whose object is missing: its writer stopped between the two; the batch was not
        // committed, and is written again under the same key.
        let Some((body, _)) = store.get_if_present(&key, Duration::from_secs(60)).await? else {
            continue;
        };
        for (n, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let event: Event = serde_json::from_slice(line).map_err(|e| LakeError::Line {
                key: key.clone(),
                line: n + 1,
                message: e.to_string(),
            })?;
            if let Some((lines, seen)) = ids.get_mut(&Hour::of_millis(event.created_at.0)) {
                *lines += 1;
                seen.insert(event.event_id.as_u128());
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
    fn hours_parse_in_every_spelling_and_print_back() {
        let h = Hour::parse("2026-11-27T09").unwrap_or_else(|e| panic!("{e}"));
        for text in ["2026-11-27T09:00", "2026-11-27T09:00:00", "2026-11-27T09:00:00Z"] {
            assert_eq!(Hour::parse(text), Ok(h), "{text}");
        }
        assert_eq!(h.to_string(), "2026-11-27T09");
        assert_eq!(h.prefix("p/").as_deref(), Some("p/dt=2026-11-27/hour=09/"));
        assert_eq!(Hour::of_millis(h.0 * 3_600_000 + 3_599_999), h);
        assert_eq!(Hour::of_millis(h.0 * 3_600_000 - 1), Hour(h.0 - 1));
        assert!(Hour::parse("2026-11-27T09:30").is_err());
        assert!(Hour::parse("yesterday").is_err());
        assert!(Hour::parse("2026-13-01T00").is_err());
    }
}
