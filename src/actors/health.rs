//! What the admin API shows of the actors: state, restarts, last error, and whether one is crash-looping.
//! Owned by the supervisor and shared by reference (no global).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::event::Millis;

/// Restarts are remembered this long: the window of the crash-loop rule and of the restart backoff.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// This many restarts inside the window make an actor crash-looping: `/ready` answers 503 until the
/// window holds fewer again (it ran a minute without failing).
pub const CRASH_LOOP_RESTARTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorState {
    Starting,
    Running,
    Restarting,
    /// Alive but holding back on purpose until something outside changes (`last_error` says what).
    Blocked,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActorStatus {
    pub state: ActorState,
    pub restarts: u64,
    /// Restarts inside the last `RESTART_WINDOW`.
    pub recent_restarts: usize,
    pub crash_looping: bool,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    #[serde(skip)]
    restarted_at: VecDeque<Instant>,
}

impl ActorStatus {
    fn forget_old_restarts(&mut self) {
        while self
            .restarted_at
            .front()
            .is_some_and(|t| t.elapsed() > RESTART_WINDOW)
        {
            self.restarted_at.pop_front();
        }
        self.recent_restarts = self.restarted_at.len();
        self.crash_looping = self.recent_restarts >= CRASH_LOOP_RESTARTS;
    }
}

/// The last commit of one partition by this consumer (the status page shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionCommit {
    pub next_offset: i64,
    pub at: Millis,
}

#[derive(Debug, Default)]
pub struct Health {
    actors: Mutex<BTreeMap<&'static str, ActorStatus>>,
    commits: Mutex<BTreeMap<i32, PartitionCommit>>,
}

impl Health {
    fn with<T>(&self, name: &'static str, f: impl FnOnce(&mut ActorStatus) -> T) -> T {
        let mut map = self.actors.lock().unwrap_or_else(|p| p.into_inner());
        let status = map.entry(name).or_insert(ActorStatus {
            state: ActorState::Starting,
            restarts: 0,
            recent_restarts: 0,
            crash_looping: false,
            last_error: None,
            last_error_at: None,
            restarted_at: VecDeque::new(),
        });
        f(status)
    }

    pub fn starting(&self, name: &'static str) {
        self.with(name, |s| s.state = ActorState::Starting);
    }

    pub fn running(&self, name: &'static str) {
        self.with(name, |s| s.state = ActorState::Running);
    }

    /// The actor waits for the outside world (`why`); it counts as not ready until `running` again.
    pub fn blocked(&self, name: &'static str, why: impl Into<String>) {
        let why = why.into();
        self.with(name, |s| {
            s.state = ActorState::Blocked;
            s.last_error = Some(why);
            s.last_error_at = Some(Millis::now().to_string());
        });
    }

    /// Records an error. Errors never carry credentials: they are built from our own error types,
    /// whose messages name services and records, not secrets.
    pub fn error(&self, name: &'static str, message: impl Into<String>) {
        let message = message.into();
        self.with(name, |s| {
            s.last_error = Some(message);
            s.last_error_at = Some(Millis::now().to_string());
        });
    }

    /// Records a restart; returns how many happened inside the window, this one included.
    pub fn restarting(&self, name: &'static str) -> usize {
        self.with(name, |s| {
            s.state = ActorState::Restarting;
            s.restarts += 1;
            s.restarted_at.push_back(Instant::now());
            s.forget_old_restarts();
            s.recent_restarts
        })
    }

    pub fn committed(&self, partition: i32, next_offset: i64) {
        let mut commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        commits.insert(partition, PartitionCommit { next_offset, at: Millis::now() });
    }

    pub fn commits(&self) -> BTreeMap<i32, PartitionCommit> {
        self.commits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, ActorStatus> {
        let mut map = self.actors.lock().unwrap_or_else(|p| p.into_inner());
        map.values_mut().for_each(ActorStatus::forget_old_restarts);
        map.clone()
    }

    /// Names of the actors that are not running, or keep failing (crash-looping).
    pub fn not_running(&self) -> Vec<&'static str> {
        self.snapshot()
            .into_iter()
            .filter(|(_, s)| s.state != ActorState::Running || s.crash_looping)
            .map(|(n, _)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_commit_of_each_partition_is_kept() {
        let health = Health::default();
        health.committed(0, 100);
        health.committed(1, 50);
        health.committed(0, 250);
        let commits = health.commits();
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[&0].next_offset, 250, "the later commit replaces the earlier one");
        assert_eq!(commits[&1].next_offset, 50);
    }

    #[test]
    fn five_restarts_inside_the_window_are_a_crash_loop() {
        let health = Health::default();
        health.running("a");
        for n in 1..CRASH_LOOP_RESTARTS {
            assert_eq!(health.restarting("a"), n);
            health.running("a");
            assert!(health.not_running().is_empty(), "after {n} restarts");
        }
        assert_eq!(health.restarting("a"), CRASH_LOOP_RESTARTS);
        health.running("a");
        assert_eq!(health.not_running(), vec!["a"]);
        let status = &health.snapshot()["a"];
        assert!(status.crash_looping);
        assert_eq!(status.restarts, CRASH_LOOP_RESTARTS as u64);
    }
}
