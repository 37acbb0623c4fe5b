//! Within one ownership epoch a partition's offsets only go up; a record at or below the last one taken
//! is one librdkafka handed over twice. It has done so around pause/resume and cooperative
//! rebalances (confluentinc/librdkafka#2593, #4637, #4686): resuming a partition that was not paused
//! restarted its fetch from an older position. Taken twice, the record would be a duplicate line in
//! the lake (ClickHouse's FINAL would hide it), so it is dropped here, where the order is known.

use rustc_hash::FxHashMap;

use crate::actors::ownership::Epoch;

/// The highest offset taken per partition, with the epoch it was taken under.
#[derive(Debug, Default)]
pub(super) struct Taken(FxHashMap<i32, (Epoch, i64)>);

impl Taken {
    /// True when `offset` of `partition` was passed already under this `epoch`. A new epoch (the
    /// partition assigned again) starts over: its owner reads again from the last commit.
    pub(super) fn is_repeat(&self, partition: i32, epoch: Epoch, offset: i64) -> bool {
        matches!(self.0.get(&partition), Some(&(e, high)) if e == epoch && offset <= high)
    }

    pub(super) fn take(&mut self, partition: i32, epoch: Epoch, offset: i64) {
        self.0.insert(partition, (epoch, offset));
    }
}

#[cfg(test)]
mod tests {
    use super::Taken;

    #[test]
    fn a_record_handed_over_again_in_its_epoch_is_a_repeat() {
        let mut taken = Taken::default();
        assert!(!taken.is_repeat(5, 1, 9021));
        taken.take(5, 1, 9021);
        taken.take(5, 1, 9022);
        assert!(taken.is_repeat(5, 1, 9022), "the same record again");
        assert!(taken.is_repeat(5, 1, 9000), "an older one");
        assert!(!taken.is_repeat(5, 1, 9023));
        assert!(!taken.is_repeat(4, 1, 9022), "another partition");
        assert!(!taken.is_repeat(5, 2, 9000), "assigned again: read again from the commit");
    }
}
