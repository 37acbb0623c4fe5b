//! What the admin API shows of the actors: state, restarts, last error. Owned by the supervisor and
//! shared by reference (no global).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::event::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorState {
    Starting,
    Running,
    Restarting,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActorStatus {
    pub state: ActorState,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

#[derive(Debug, Default)]
pub struct Health {
    actors: Mutex<BTreeMap<&'static str, ActorStatus>>,
}

impl Health {
    fn with<T>(&self, name: &'static str, f: impl FnOnce(&mut ActorStatus) -> T) -> T {
        let mut map = self.actors.lock().unwrap_or_else(|p| p.into_inner());
        let status = map.entry(name).or_insert(ActorStatus {
            state: ActorState::Starting,
            restarts: 0,
            last_error: None,
            last_error_at: None,
        });
        f(status)
    }

    pub fn starting(&self, name: &'static str) {
        self.with(name, |s| s.state = ActorState::Starting);
    }

    pub fn running(&self, name: &'static str) {
        self.with(name, |s| s.state = ActorState::Running);
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

    pub fn restarting(&self, name: &'static str) {
        self.with(name, |s| {
            s.state = ActorState::Restarting;
            s.restarts += 1;
        });
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, ActorStatus> {
        self.actors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Names of the actors that are not running.
    pub fn not_running(&self) -> Vec<&'static str> {
        self.snapshot()
            .into_iter()
            .filter(|(_, s)| s.state != ActorState::Running)
            .map(|(n, _)| n)
            .collect()
    }
}
