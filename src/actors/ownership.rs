//! Which partitions this consumer owns, since which assignment (an epoch), and what it committed for
//! them. Written by the reader's rebalance callbacks, read by the read loop, the Batcher and the commit
//! path. One lock covers "is it still ours?" and the commit itself, so a revocation can never slip in
//! between the check and the commit: a member commits only partitions it owns, under the epoch the
//! batch was read in (a partition revoked and assigned back is a new epoch, read again from Kafka).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One assignment of one partition to this member. Epochs only grow.
pub type Epoch = u64;

#[derive(Debug, Default)]
pub struct Ownership {
    state: Mutex<State>,
    /// Bumped at every assignment or revocation, so the read loop notices one with an atomic load.
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    last_epoch: Epoch,
    owned: BTreeMap<i32, Owned>,
}

#[derive(Debug, Clone, Copy)]
struct Owned {
    epoch: Epoch,
    /// The last offset this member committed for the partition in this epoch.
    committed: Option<i64>,
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitRefused<E> {
    #[error("partition {partition} is not owned under epoch {epoch} any more (revoked or reassigned)")]
    NotOwned { partition: i32, epoch: Epoch },
    #[error(transparent)]
    Failed(E),
}

impl Ownership {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a map of plain values: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records newly assigned partitions; each gets a fresh epoch (returned).
    pub fn assign(&self, partitions: &[i32]) -> Vec<(i32, Epoch)> {
        let mut state = self.lock();
        let given: Vec<(i32, Epoch)> = partitions
            .iter()
            .map(|&p| {
                state.last_epoch += 1;
                let epoch = state.last_epoch;
                state.owned.insert(
                    p,
                    Owned {
                        epoch,
                        committed: None,
                    },
                );
                (p, epoch)
            })
            .collect();
        self.generation.fetch_add(1, Ordering::SeqCst);
        given
    }

    /// Forgets revoked partitions, each only if still owned under the epoch given (a newer assignment
    /// of it is someone else's to revoke). Waits for a commit in progress (it holds the lock) first.
    pub fn revoke(&self, revoked: &[(i32, Epoch)]) {
        let mut state = self.lock();
        for (p, epoch) in revoked {
            if state.owned.get(p).is_some_and(|o| o.epoch == *epoch) {
                state.owned.remove(p);
            }
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets every partition (the consumer is gone: closed, or replaced after a restart).
    pub fn revoke_all(&self) {
        self.lock().owned.clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn epoch(&self, partition: i32) -> Option<Epoch> {
        self.lock().owned.get(&partition).map(|o| o.epoch)
    }

    pub fn owns(&self, partition: i32, epoch: Epoch) -> bool {
        self.epoch(partition) == Some(epoch)
    }

    /// Every owned partition and its epoch.
    pub fn owned(&self) -> Vec<(i32, Epoch)> {
        self.lock().owned.iter().map(|(p, o)| (*p, o.epoch)).collect()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The offset last committed by this member for `partition` in its current epoch.
    pub fn committed(&self, partition: i32) -> Option<i64> {
        self.lock().owned.get(&partition).and_then(|o| o.committed)
    }

    /// Runs `commit` (a blocking call) while holding the lock, if `partition` is still owned under
    /// `epoch`, and remembers `offset` once it succeeded.
    pub fn commit_if_owned<E>(
        &self,
        partition: i32,
        epoch: Epoch,
        offset: i64,
        commit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), CommitRefused<E>> {
        let mut state = self.lock();
        let owned = match state.owned.get_mut(&partition) {
            Some(o) if o.epoch == epoch => o,
            _ => return Err(CommitRefused::NotOwned { partition, epoch }),
        };
        commit().map_err(CommitRefused::Failed)?;
        owned.committed = Some(owned.committed.map_or(offset, |c| c.max(offset)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_assigned_again_is_a_new_epoch() {
        let o = Ownership::default();
        let first = o.assign(&[0, 1]);
        let g = o.generation();
        o.revoke(&[(1, first[0].1)]);
        assert!(o.owns(1, first[1].1), "an epoch that is not partition 1's revokes nothing");
        o.revoke(&[(0, first[0].1)]);
        assert!(o.generation() > g);
        assert_eq!(o.epoch(0), None);
        let again = o.assign(&[0]);
        assert_ne!(again[0].1, first[0].1);
        assert!(o.owns(1, first[1].1));
        assert!(!o.owns(0, first[0].1), "the old epoch must not be accepted");
    }

    #[test]
    fn commits_only_while_owned_and_never_backwards() {
        let o = Ownership::default();
        let e = o.assign(&[3])[0].1;
        let ok: Result<(), CommitRefused<&str>> = o.commit_if_owned(3, e, 100, || Ok(()));
        assert!(ok.is_ok());
        assert_eq!(o.committed(3), Some(100));
        let _ = o.commit_if_owned::<&str>(3, e, 50, || Ok(()));
        assert_eq!(o.committed(3), Some(100), "the remembered offset never moves back");
        let failed = o.commit_if_owned(3, e, 200, || Err("broker down"));
        assert!(matches!(failed, Err(CommitRefused::Failed("broker down"))));
        assert_eq!(o.committed(3), Some(100));
        o.revoke(&[(3, e)]);
        let mut called = false;
        let refused = o.commit_if_owned::<&str>(3, e, 300, || {
            called = true;
            Ok(())
        });
        assert!(matches!(refused, Err(CommitRefused::NotOwned { partition: 3, .. })));
        assert!(!called, "a revoked partition is never committed");
    }
}
