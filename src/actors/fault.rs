//! Test-only fault injection, compiled into debug builds only (never into `--release`, so never into the
//! image): makes an actor panic the way a bug would, so supervision is tested on the real pipeline. Gated
//! on `debug_assertions` rather than a cargo feature so tests and image build with the same features.
//! (A *stop* needs no hook: it is the admin API's `Restart`.) The handlers are in `supervisor.rs`.

use std::collections::BTreeMap;

use actix::prelude::*;

/// Panic now, abandoning whatever the actor was doing; its supervisor restarts it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Panic;

/// The actors that can be made to panic, by name.
pub type Crashers = BTreeMap<&'static str, Recipient<Panic>>;
