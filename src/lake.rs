//! Reading the lake (the JSONL objects in S3) back, hour by hour of the events' own `created_at`.
//!
//! An object sits under the hour of its first event (`dt=YYYY-MM-DD/hour=HH/`, see
//! `minio_writer::object_key`), and a batch can straddle an hour: so the events of an hour are looked
//! for in its own objects and in those of the hour before and after, and each event is counted in its
//! own hour.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::event::Event;
use crate::s3::{ObjectStore, S3Error};

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
    for h in from.0 - 1..=to.0 {
        let hour_prefix = Hour(h).prefix(prefix).ok_or(LakeError::Range(Hour(h)))?;
        for key in store.list(&hour_prefix).await? {
            let body = store.get(&key, Duration::from_secs(60)).await?;
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
