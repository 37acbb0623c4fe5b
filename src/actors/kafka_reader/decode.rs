//! What one record is: an event both sinks can hold, poison (with the kind of reason), or a record whose
//! schema id the registry does not know or cannot be asked about (decided by the read loop). Writer
//! schemas are fetched by id once and kept; a "not found" is remembered for `NEGATIVE_TTL`, so a flood of
//! records with a bogus id costs one registry call, not one each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::{Event, EventError};
use crate::wire::DecodeEventError;
use crate::registry::{ClientError, RegistryClient};
use crate::wire::{self, WireError};

/// How long "the registry does not know id N" (or "… subject S") is believed before asking again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// The Confluent error code of "schema not found" (`GET /schemas/ids/{id}`).
const SCHEMA_NOT_FOUND: u32 = 40403;
/// … and of "subject not found".
const SUBJECT_NOT_FOUND: u32 = 40401;

#[derive(Debug)]
pub enum Classified {
    Event(Event),
    /// Never decodable: to the dead-letter topic with this kind (`nrt_decode_errors_total{kind}`).
    Poison { kind: &'static str, message: String },
    /// The registry answered that it does not know this id.
    UnknownId { id: u32, message: String },
    /// The registry gave no definite answer (down, timing out, refusing us, a proxy's page, a schema
    /// that does not parse): nothing can be decided yet.
    Unresolved { id: u32, message: String, outage: Outage },
}

/// Why the registry gave no answer about a schema id. Only Confluent's 40403 from the registry itself
/// says "no such schema"; anything else is the registry (or the way to it) failing us, and a record must
/// never be dead-lettered for that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Not reached: connection refused, timeout, TLS, 5xx, 429, a body that is not JSON.
    Unreachable,
    /// Reached, and it refuses us or answers nonsense: 401, 403, 400, a 404 without Confluent's error
    /// body (a proxy), a schema text that does not parse.
    Refused,
}

/// What a failed lookup of a schema id means.
pub(super) fn outage_of(e: &ClientError) -> Option<Outage> {
    match e {
        _ if e.error_code() == Some(SCHEMA_NOT_FOUND) => None,
        _ if e.is_transient() => Some(Outage::Unreachable),
        _ => Some(Outage::Refused),
    }
}

pub struct Decoding {
    registry: Arc<RegistryClient>,
    decoders: wire::Decoders,
    /// Ids the registry said it does not know, and when it said so.
    unknown: HashMap<u32, Instant>,
    /// The value subject of the topic (`<topic>-value`) and, once asked, whether the registry has it.
    subject: String,
    subject_known: Option<(Instant, bool)>,
}

impl Decoding {
    pub fn new(registry: Arc<RegistryClient>, reader: Arc<apache_avro::Schema>, topic: &str) -> Self {
        Decoding {
            registry,
            decoders: wire::Decoders::new(reader),
            unknown: HashMap::new(),
            subject: format!("{topic}-value"),
            subject_known: None,
        }
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Classifies a record without waiting (the hot path: its writer schema is known, or it is not
    /// even framed); None when the registry must be asked first (`classify`).
    pub fn classify_now(&self, payload: &[u8]) -> Option<Classified> {
        self.classify_known(payload).ok()
    }

    /// Classifies any record, asking the registry for a writer schema it has not seen yet.
    pub async fn classify(&mut self, payload: &[u8]) -> Classified {
        let id = match self.classify_known(payload) {
            Ok(classified) => return classified,
            Err(id) => id,
        };
        match self.registry.schema_by_id(id).await {
            Ok(writer) => self.decoders.learn(id, writer),
            Err(e) => {
                let message = e.to_string();
                return match outage_of(&e) {
                    Some(outage) => Classified::Unresolved { id, message, outage },
                    None => {
                        self.unknown.insert(id, Instant::now());
                        Classified::UnknownId { id, message }
                    }
                };
            }
        }
        self.classify_known(payload).unwrap_or_else(|id| Classified::Unresolved {
            id,
            message: format!("schema {id} fetched but not learnt"),
            outage: Outage::Refused,
        })
    }

    /// The record's class, or `Err(id)` when writer schema `id` must first be asked for.
    fn classify_known(&self, payload: &[u8]) -> Result<Classified, u32> {
        let poison = |kind, e: &dyn std::fmt::Display| Classified::Poison {
            kind,
            message: e.to_string(),
        };
        let (id, avro) = match wire::split(payload) {
            Ok(split) => split,
            Err(e @ WireError::TooShort(_)) => return Ok(poison("too_short", &e)),
            Err(e) => return Ok(poison("bad_magic", &e)),
        };
        if !self.decoders.knows(id) {
            return self.still_unknown(id).ok_or(id);
        }
        Ok(match self.decoders.decode_event(id, avro) {
            Ok(event) => Classified::Event(event),
            Err(DecodeEventError::Wire(e @ WireError::Resolve { .. })) => poison("schema_resolution", &e),
            Err(DecodeEventError::Wire(e @ WireError::BeyondLimits { .. })) => poison("beyond_limits", &e),
            Err(DecodeEventError::Wire(e)) => poison("corrupt", &e),
            Err(DecodeEventError::Event(e @ EventError::CreatedAtOutOfRange(_))) => {
                poison("created_at_out_of_range", &e)
            }
            Err(DecodeEventError::Event(e)) => poison("invalid_event", &e),
        })
    }

    fn still_unknown(&self, id: u32) -> Option<Classified> {
        let at = self.unknown.get(&id)?;
        (at.elapsed() < NEGATIVE_TTL).then(|| Classified::UnknownId {
            id,
            message: format!("schema {id} not found (asked {} ms ago)", at.elapsed().as_millis()),
        })
    }

    /// Whether the registry has the topic's value subject at all (cached for `NEGATIVE_TTL`). A registry
    /// without it cannot be the one this topic's producers registered with.
    pub async fn subject_known(&mut self) -> Result<bool, ClientError> {
        if let Some((at, known)) = self.subject_known {
            if at.elapsed() < NEGATIVE_TTL {
                return Ok(known);
            }
        }
        let known = match self.registry.latest(&self.subject).await {
            Ok(_) => true,
            Err(e) if e.error_code() == Some(SUBJECT_NOT_FOUND) => false,
            Err(e) => return Err(e),
        };
        self.subject_known = Some((Instant::now(), known));
        Ok(known)
    }

    /// Asks the registry about `id` again, now (during a pause for a registry that seemed wrong).
    pub async fn recheck(&mut self, id: u32) -> Recheck {
        self.unknown.remove(&id);
        self.subject_known = None;
        match self.registry.schema_by_id(id).await {
            Ok(writer) => {
                self.decoders.learn(id, writer);
                Recheck::Known
            }
            Err(e) => match outage_of(&e) {
                Some(_) => Recheck::Unreachable,
                None => Recheck::NotFound,
            },
        }
    }
}

/// The registry's answer about an id, asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// It has it now.
    Known,
    NotFound,
    /// No definite answer yet (any `Outage`).
    Unreachable,
}
