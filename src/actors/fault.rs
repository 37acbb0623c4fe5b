//! Test-only fault injection, compiled into debug builds only (never into `--release`, so never into the
//! image): makes an actor panic the way a bug would, so supervision is tested on the real pipeline. Gated
//! on `debug_assertions` rather than a cargo feature so tests and image build with the same features.
//! (A *stop* needs no hook: it is the admin API's `Restart`.) The handlers are in `supervisor.rs`.

use std::collections::BTreeMap;

use actix::prelude::*;

/// Panic, abandoning whatever the actor was doing; its supervisor restarts it. `mid_batch`: not now but
/// at the worst moment of the next batch, for the actors that have one (`MidBatch`); the others panic
/// at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Panic {
    pub mid_batch: bool,
}

/// Where an actor can be made to fail inside a batch rather than between two.
pub trait MidBatch {
    /// Arms the failure; false if the actor has no such moment (it then panics at once).
    fn arm_mid_batch(&mut self) -> bool {
        false
    }
}

/// The actors that can be made to panic, by name.
pub type Crashers = BTreeMap<&'static str, Recipient<Panic>>;
