//! Which objects hold the events of an hour. An object sits under its first event's hour, but its
//! events may be hours (or years) from that one: a batch straddles an hour, a producer backfills. So
//! each object records the hours it holds (`nrt-hours`), and for every hour but its own the writer
//! leaves a reference under that hour (`…/hour=HH/<object's file name>.ref`, the object's key as its
//! body) before it creates the object. Readers of an hour read its objects and the objects its
//! references name. Objects of the older layout (no `nrt-hours`, no references) held events within an
//! hour of their own; the hour before and after a range are still read for them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::key::{hour_dir, is_object, is_reference};
use super::{Hour, LakeError};
use crate::s3::ObjectStore;

/// The metadata field listing the hours an object holds.
pub const HOURS_META: &str = "nrt-hours";

/// The most distinct hours one object may hold: past that the Batcher cuts the batch (each hour beyond
/// the object's own costs a reference, one more PUT).
pub const MAX_HOURS: usize = 24;

/// The hours as the metadata holds them: hours since the Unix epoch, ascending, comma-separated.
pub fn encode(hours: &BTreeSet<Hour>) -> String {
    let parts: Vec<String> = hours.iter().map(|h| h.0.to_string()).collect();
    parts.join(",")
}

/// The hours of `nrt-hours`; None when the object does not record them (the older layout).
pub fn decode(meta: &HashMap<String, String>) -> Option<BTreeSet<Hour>> {
    let text = meta.get(HOURS_META)?;
    text.split(',').map(|h| h.parse().ok().map(Hour)).collect()
}

/// The objects that may hold events of `from..to`, each once, with the hour they are read in: hour by
/// hour, by key within an hour (the order `nrt replay`'s checkpoint counts on). Objects under the
/// hour before and after the range are included only when they may hold events of it: the older
/// layout's, and those whose `nrt-hours` say so (a HEAD each).
pub async fn objects(store: &ObjectStore, prefix: &str, from: Hour, to: Hour) -> Result<Vec<(Hour, String)>, LakeError> {
    // Objects under the range's own hours, and the objects their references name.
    let mut found: BTreeMap<String, Hour> = BTreeMap::new();
    for h in from.0..to.0 {
        let hour = Hour(h);
        let hour_prefix = hour_dir(prefix, hour).ok_or(LakeError::Range(hour))?;
        for key in store.list(&hour_prefix).await? {
            if is_object(&key) {
                found.entry(key).or_insert(hour);
            } else if is_reference(&key) {
                let target = String::from_utf8_lossy(&store.get(&key, REF_TIMEOUT).await?).into_owned();
                found.entry(target).or_insert(hour);
            }
        }
    }
    for edge in [Hour(from.0 - 1), to] {
        let hour_prefix = hour_dir(prefix, edge).ok_or(LakeError::Range(edge))?;
        for key in store.list(&hour_prefix).await?.into_iter().filter(|k| is_object(k)) {
            if found.contains_key(&key) {
                continue;
            }
            let holds = decode(&store.metadata(&key).await?);
            if holds.is_none_or(|hours| hours.iter().any(|h| *h >= from && *h < to)) {
                found.insert(key, edge);
            }
        }
    }
    let mut ordered: Vec<(Hour, String)> = found.into_iter().map(|(k, h)| (h, k)).collect();
    ordered.sort();
    Ok(ordered)
}

const REF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_trip() {
        let hours: BTreeSet<Hour> = [Hour(490_000), Hour(489_997), Hour(0)].into_iter().collect();
        let meta = HashMap::from([(HOURS_META.to_owned(), encode(&hours))]);
        assert_eq!(meta[HOURS_META], "0,489997,490000");
        assert_eq!(decode(&meta), Some(hours));
        assert_eq!(decode(&HashMap::new()), None, "the older layout");
        let bad = HashMap::from([(HOURS_META.to_owned(), "12,x".to_owned())]);
        assert_eq!(decode(&bad), None);
    }
}
