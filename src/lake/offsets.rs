//! The Kafka offset of every line of a lake object, kept in the object's metadata (`nrt-offsets`) so
//! `nrt replay` can give a row back the `kafka_offset` it had. Lines are in offset order and mostly
//! consecutive from the batch's first offset; what breaks the run is a transaction marker (one offset
//! after every producer transaction), an aborted transaction, or a dead-lettered record (also before
//! the first line). So only the breaks are written: for each, how many lines after the previous break
//! it comes (base 36; 0 for the first line) and, when it is not the usual single marker, `+` and how
//! many offsets it skips (base 36), joined by `.`. A 50,000-line batch of 1,000-event transactions over
//! 3 partitions needs ~150 breaks, ~450 bytes.

/// Above this many bytes the list goes to a sidecar object instead (S3 and MinIO refuse more than
/// 2 KB of user metadata in all, names included; the hours an object holds take up to ~200 more).
pub const METADATA_LIMIT: usize = 1_280;

/// `offsets` (ascending, from `first` on) as the break list; empty when they are `first`, `first + 1`, …
pub fn encode(first: i64, offsets: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::new();
    // The line before the first, as if at `first - 1`: a first line past `first` is a break at line 0.
    let mut previous = first - 1;
    let (mut line, mut last_break) = (0u64, 0u64);
    for o in offsets {
        let skipped = o - previous - 1;
        if skipped > 0 {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&base36(line - last_break));
            if skipped != 1 {
                out.push('+');
                out.push_str(&base36(skipped as u64));
            }
            last_break = line;
        }
        previous = o;
        line += 1;
    }
    out
}

/// Why a break list cannot be read (an object's metadata edited or cut by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreaksError {
    #[error("'{0}' is not a base-36 number in the offset breaks")]
    NotBase36(String),
    #[error("offset breaks '{breaks}' reach past the object's {lines} lines")]
    PastTheEnd { breaks: String, lines: usize },
}

/// The offsets of `lines` lines starting at `first`, from the break list `encode` wrote.
pub fn decode(first: i64, lines: usize, breaks: &str) -> Result<Vec<i64>, BreaksError> {
    let mut skips = std::collections::BTreeMap::new();
    let mut at = 0u64;
    for entry in breaks.split('.').filter(|e| !e.is_empty()) {
        let (delta, skipped) = match entry.split_once('+') {
            Some((d, s)) => (d, from_base36(s)?),
            None => (entry, 1),
        };
        at += from_base36(delta)?;
        skips.insert(at, skipped as i64);
    }
    if skips.keys().next_back().is_some_and(|&last| last >= lines as u64) {
        return Err(BreaksError::PastTheEnd {
            breaks: breaks.to_owned(),
            lines,
        });
    }
    let mut offsets = Vec::with_capacity(lines);
    let mut next = first;
    for line in 0..lines as u64 {
        next += skips.get(&line).copied().unwrap_or(0);
        offsets.push(next);
        next += 1;
    }
    Ok(offsets)
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn from_base36(s: &str) -> Result<u64, BreaksError> {
    u64::from_str_radix(s, 36).map_err(|_| BreaksError::NotBase36(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn round_trips_any_ascending_offsets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..2_000 {
            let mut o: i64 = rng.gen_range(0..1_000_000);
            let offsets: Vec<i64> = (0..rng.gen_range(1..400))
                .map(|_| {
                    o += match rng.gen_range(0..10) {
                        0 => 2,
                        1 => rng.gen_range(3..100_000),
                        _ => 1,
                    };
                    o
                })
                .collect();
            // The batch may start before its first line (a dead letter, a marker).
            let first = offsets[0] - rng.gen_range(0..3);
            let breaks = encode(first, offsets.iter().copied());
            assert_eq!(decode(first, offsets.len(), &breaks), Ok(offsets));
        }
    }

    #[test]
    fn consecutive_offsets_need_nothing_and_markers_need_little() {
        assert_eq!(encode(10, 10..20), "");
        assert_eq!(decode(10, 10, ""), Ok((10..20).collect()));
        // 1,000-event transactions: a marker after each.
        let offsets = (0..50_000i64).map(|i| i + i / 333);
        let breaks = encode(0, offsets);
        assert!(breaks.len() < 600, "{} bytes", breaks.len());
        assert_eq!(encode(5, [5, 7, 20]), "1.1+c");
        // A batch whose first record went to the dead-letter topic: its first line is at offset 6.
        assert_eq!(encode(5, [6, 7, 9]), "0.2");
        assert_eq!(decode(5, 3, "0.2"), Ok(vec![6, 7, 9]));
        assert_eq!(encode(5, [8, 9]), "0+3");
        assert_eq!(decode(5, 2, "0+3"), Ok(vec![8, 9]));
        assert!(decode(0, 2, "1.1").is_err(), "a break past the last line");
        assert!(decode(0, 5, "x!").is_err());
    }
}
