//! Test-only fault injection, compiled into debug builds only (never into `--release`, so never into the
//! image): makes an actor fail the way a bug would, so supervision is tested on the real pipeline. Gated on
//! `debug_assertions` rather than a cargo feature so tests and image build with the same features.

use std::collections::BTreeMap;

use actix::prelude::*;

use super::batcher::Batcher;
use super::clickhouse_writer::ClickhouseWriter;
use super::encoder::Encoder;
use super::kafka_publisher::KafkaPublisher;
use super::kafka_reader::KafkaReader;
use super::minio_writer::MinioWriter;
use super::poller::Poller;

/// Fail now, abandoning whatever the actor was doing: stop (a fatal error) or panic (a bug). Either way
/// its supervisor restarts it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Crash {
    pub panic: bool,
}

/// The actors that can be crashed, by name.
pub type Crashers = BTreeMap<&'static str, Recipient<Crash>>;

macro_rules! crashable {
    ($($actor:ty),*) => {$(
        impl Handler<Crash> for $actor {
            type Result = ();
            fn handle(&mut self, crash: Crash, ctx: &mut Self::Context) {
                if crash.panic {
                    panic!("fault injection: {} panics", stringify!($actor));
                }
                log::warn!("fault injection: {} stops", stringify!($actor));
                ctx.stop();
            }
        }
    )*};
}

crashable!(
    Poller,
    Encoder,
    KafkaPublisher,
    KafkaReader,
    Batcher,
    MinioWriter,
    ClickhouseWriter
);
