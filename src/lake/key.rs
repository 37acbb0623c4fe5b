//! The lake's keys, written and read in this one place. A batch's object is
//! `{prefix}dt=YYYY-MM-DD/hour=HH/events_YYYYMMDD_HHMMSS_p{partition}_o{first offset}.{jsonl|parquet}`, under the
//! hour of its first record's event time (not the wall clock, which would differ on replay). Beside it
//! may sit its offsets sidecar (`<key>.<digest>.offsets`, see `offsets.rs`) and, under each other hour its
//! records are of, a reference (`…/hour=HH/<the object's file name>.ref`, see `hours.rs`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};

use super::Hour;
use crate::event::Millis;

/// A batch's object, by what its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey {
    /// The pipeline's key prefix (`NRT_S3_PREFIX`), as given.
    pub prefix: String,
    /// The first record's event time, to the second.
    pub time: DateTime<Utc>,
    pub partition: i32,
    pub first_offset: i64,
    pub format: Format,
}

/// What a lake object holds (`NRT_LAKE_FORMAT`): its key's extension says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One JSON record per line.
    #[default]
    Jsonl,
    /// Parquet (`lake::parquet`).
    Parquet,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Jsonl, Format::Parquet];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The format of the object `key` names, by its extension.
    pub fn of_key(key: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| key.strip_suffix(f.extension()).is_some_and(|k| k.ends_with('.')))
    }
}

impl ObjectKey {
    /// None for a first time without a calendar date.
    pub fn new(prefix: &str, first_time: Millis, partition: i32, first_offset: i64, format: Format) -> Option<ObjectKey> {
        let time = DateTime::from_timestamp(first_time.0.div_euclid(1000), 0)?;
        Some(ObjectKey {
            prefix: prefix.to_owned(),
            time,
            partition,
            first_offset,
            format,
        })
    }

    /// The same batch's key in another format (a pipeline switched formats: never both).
    pub fn in_format(&self, format: Format) -> ObjectKey {
        ObjectKey {
            format,
            ..self.clone()
        }
    }

    /// A key read back; None when it is not one of the lake's objects (a sidecar, a reference, anything
    /// else under the prefix), or when its directories and its name disagree on the time.
    pub fn parse(key: &str) -> Option<ObjectKey> {
        let mut parts = key.rsplitn(3, '/');
        let (name, hour_dir, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let prefix = rest.get(..rest.len().checked_sub(DT_LEN)?)?;
        let date = NaiveDate::parse_from_str(rest.get(prefix.len()..)?.strip_prefix("dt=")?, "%Y-%m-%d").ok()?;
        let hour: u32 = hour_dir.strip_prefix("hour=").filter(|h| h.len() == 2)?.parse().ok()?;
        let format = Format::of_key(name)?;
        let name = name.strip_prefix("events_")?.strip_suffix(format.extension())?.strip_suffix('.')?;
        let (stamp, numbers) = (name.get(..STAMP_LEN)?, name.get(STAMP_LEN..)?);
        let time = NaiveDateTime::parse_from_str(stamp, "%Y%m%d_%H%M%S").ok()?.and_utc();
        let (partition, first_offset) = numbers.strip_prefix("_p")?.split_once("_o")?;
        let key = ObjectKey {
            prefix: prefix.to_owned(),
            time,
            partition: partition.parse().ok()?,
            first_offset: first_offset.parse().ok()?,
            format,
        };
        (time.date_naive() == date && time.hour() == hour).then_some(key)
    }

    /// The hour it sits under.
    pub fn hour(&self) -> Hour {
        Hour::of_millis(self.time.timestamp() * 1000)
    }
}

/// `dt=YYYY-MM-DD`
const DT_LEN: usize = 13;
/// `YYYYMMDD_HHMMSS`
const STAMP_LEN: usize = 15;

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.time;
        write!(
            f,
            "{}dt={}/hour={}/events_{}_p{}_o{}.{}",
            self.prefix,
            t.format("%Y-%m-%d"),
            t.format("%H"),
            t.format("%Y%m%d_%H%M%S"),
            self.partition,
            self.first_offset,
            self.format.extension()
        )
    }
}

/// The directory of the objects under `hour`: `{prefix}dt=YYYY-MM-DD/hour=HH/`.
pub fn hour_dir(prefix: &str, hour: Hour) -> Option<String> {
    let t = hour.start()?;
    Some(format!("{prefix}dt={}/hour={}/", t.format("%Y-%m-%d"), t.format("%H")))
}

/// Whether `key` is one of the lake's objects, in either format (not a sidecar or anything else under
/// the prefix).
pub fn is_object(key: &str) -> bool {
    Format::of_key(key).is_some()
}

/// The reference to `object_key` under `hour` (another hour its records are of).
pub fn reference(prefix: &str, hour: Hour, object_key: &str) -> Option<String> {
    let name = object_key.rsplit('/').next()?;
    Some(format!("{}{name}.ref", hour_dir(prefix, hour)?))
}

pub fn is_reference(key: &str) -> bool {
    key.strip_suffix(".ref").is_some_and(is_object)
}

/// The sidecar holding `key`'s offset list, named for the digest of its content (two writers of one
/// object never replace each other's); `None` for the older layout's `<key>.offsets`.
pub fn sidecar(key: &str, digest: Option<&str>) -> String {
    match digest {
        Some(digest) => format!("{key}.{digest}.offsets"),
        None => format!("{key}.offsets"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn keys_read_back_as_they_were_written() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for prefix in ["", "p/", "test-a-1/", "raw", "a/dt=2020-01-01/hour=00/"] {
            for _ in 0..500 {
                let ms = rng.gen_range(-10_000_000_000_000i64..100_000_000_000_000);
                let (partition, offset) = (rng.gen_range(0..10_000), rng.gen_range(0..i64::MAX));
                let format = Format::ALL[rng.gen_range(0..2)];
                let Some(key) = ObjectKey::new(prefix, Millis(ms), partition, offset, format) else {
                    continue;
                };
                let text = key.to_string();
                assert_eq!(ObjectKey::parse(&text), Some(key.clone()), "{text}");
                assert!(text.starts_with(&hour_dir(prefix, key.hour()).unwrap_or_default()), "{text}");
                assert!(is_object(&text));
            }
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let key = ObjectKey::new("p/", Millis(1_764_063_000_123), 1, 7, Format::Jsonl);
        let text = key.as_ref().map(|k| k.to_string());
        assert_eq!(text.as_deref(), Some("p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7.jsonl"));
        let parquet = key.map(|k| k.in_format(Format::Parquet).to_string());
        assert_eq!(parquet.as_deref(), Some("p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7.parquet"));
    }

    #[test]
    fn what_is_not_an_object_key_is_refused() {
        for text in [
            "p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7.jsonl.ref",
            "p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7.jsonl.ab12.offsets",
            "p/dt=2025-11-25/hour=10/events_20251125_093000_p1_o7.jsonl",
            "p/dt=2025-11-26/hour=09/events_20251125_093000_p1_o7.jsonl",
            "p/dt=2025-11-25/hour=9/events_20251125_093000_p1_o7.jsonl",
            "p/dt=2025-11-25/hour=09/events_20251125_093000_px_o7.jsonl",
            "p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7.parquet.ref",
            "p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7.csv",
            "p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7jsonl",
            "events_20251125_093000_p1_o7.jsonl",
            "",
        ] {
            assert_eq!(ObjectKey::parse(text), None, "{text}");
        }
    }

    #[test]
    fn references_and_sidecars_sit_beside_their_object() {
        let object = "p/dt=2025-11-25/hour=09/events_20251125_093000_p1_o7.jsonl";
        let r = reference("p/", Hour(490_000), object);
        assert_eq!(r.as_deref(), Some("p/dt=2025-11-24/hour=16/events_20251125_093000_p1_o7.jsonl.ref"));
        assert!(r.as_deref().is_some_and(is_reference) && !is_object(r.as_deref().unwrap_or_default()));
        assert_eq!(sidecar(object, Some("ab")), format!("{object}.ab.offsets"));
        assert_eq!(sidecar(object, None), format!("{object}.offsets"));
        let parquet = object.replace(".jsonl", ".parquet");
        let r = reference("p/", Hour(490_000), &parquet).unwrap_or_default();
        assert!(is_reference(&r) && !is_object(&r) && is_object(&parquet), "{r}");
    }
}
