//! What one record is: decoded along its writer schema into the run's records (its lake line and its
//! ClickHouse row, `record.rs`), poison (with the kind of reason), or a record whose schema id the
//! registry does not know or cannot be asked about, or whose schema the table cannot take yet (decided
//! by the read loop). Writer schemas are fetched by id once and learnt by the shared `Plans` (the table
//! made able to take them first); a "not found" is remembered for `NEGATIVE_TTL`, so a flood of records
//! with a bogus id costs one registry call, not one each.

use crate::poison::PoisonKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clickhouse::plans::{Fit, LearnError, Plans};
use crate::clickhouse::row::Scratch;
use crate::record::{Poison, RecordPlan, Records};
use crate::registry::{ClientError, RegistryClient, SubjectStrategy};
use crate::wire::{self, WireError};

/// How long "the registry does not know id N" (or "… subject S") is believed before asking again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// The Confluent error code of "schema not found" (`GET /schemas/ids/{id}`).
const SCHEMA_NOT_FOUND: u32 = 40403;
/// … and of "subject not found".
const SUBJECT_NOT_FOUND: u32 = 40401;

#[derive(Debug)]
pub enum Classified {
    /// Appended to the records given.
    Decoded,
    /// Never decodable: to the dead-letter topic with this kind (`nrt_decode_errors_total{kind}`).
    Poison { kind: PoisonKind, message: String },
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
    /// The registry answered; ClickHouse, asked for the table's columns, did not.
    Warehouse,
    /// The table cannot take the schema (a field retyped beyond widening): an operator decides.
    SchemaChange,
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
    plans: Arc<Plans>,
    /// The plan of the last record's writer schema (most records share it).
    last: Option<(u32, Arc<RecordPlan>)>,
    scratch: Scratch,
    walked: Vec<u8>,
    /// Ids the registry said it does not know, and when it said so.
    unknown: HashMap<u32, Instant>,
    /// The topic, which subjects hold its schemas and, once asked, whether the registry has any.
    topic: String,
    strategy: SubjectStrategy,
    subject_known: Option<(Instant, bool)>,
}

impl Decoding {
    pub fn new(registry: Arc<RegistryClient>, plans: Arc<Plans>, topic: &str, strategy: SubjectStrategy) -> Self {
        Decoding {
            registry,
            plans,
            last: None,
            scratch: Scratch::default(),
            walked: Vec::new(),
            unknown: HashMap::new(),
            topic: topic.to_owned(),
            strategy,
            subject_known: None,
        }
    }

    /// The topic's subjects, for a message.
    pub fn subjects(&self) -> String {
        self.strategy.describe(&self.topic)
    }

    /// Classifies a record without waiting (the hot path: its writer schema is known, or it is not
    /// even framed); None when the registry must be asked first (`classify`). A record decoded is
    /// appended to `into`; `now` is the event time of a schema without a timestamp field.
    pub fn classify_now(&mut self, record: Incoming<'_>, into: &mut Records) -> Option<Classified> {
        self.classify_known(record, into).ok()
    }

    /// Classifies any record, asking the registry for a writer schema it has not seen yet.
    pub async fn classify(&mut self, record: Incoming<'_>, into: &mut Records) -> Classified {
        let id = match self.classify_known(record, into) {
            Ok(classified) => return classified,
            Err(id) => id,
        };
        if let Err(unresolved) = self.learn(id).await {
            return unresolved;
        }
        self.classify_known(record, into).unwrap_or_else(|id| Classified::Unresolved {
            id,
            message: format!("schema {id} fetched but not learnt"),
            outage: Outage::Refused,
        })
    }

    /// Fetches writer schema `id` and has the table learn it.
    async fn learn(&mut self, id: u32) -> Result<(), Classified> {
        let writer = match self.registry.schema_by_id(id).await {
            Ok(writer) => writer,
            Err(e) => {
                let message = e.to_string();
                return Err(match outage_of(&e) {
                    Some(outage) => Classified::Unresolved { id, message, outage },
                    None => {
                        self.unknown.insert(id, Instant::now());
                        Classified::UnknownId { id, message }
                    }
                });
            }
        };
        match self.plans.learn(id, &writer).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let outage = match e {
                    LearnError::Unreachable(_) => Outage::Warehouse,
                    LearnError::Holds { .. } => Outage::SchemaChange,
                };
                Err(Classified::Unresolved {
                    id,
                    message: format!("{}.{}: {e}", self.plans.table().database, self.plans.table().table),
                    outage,
                })
            }
        }
    }

    /// The record's class, or `Err(id)` when writer schema `id` must first be asked for.
    fn classify_known(&mut self, record: Incoming<'_>, into: &mut Records) -> Result<Classified, u32> {
        let poison = |kind, e: &dyn std::fmt::Display| Classified::Poison {
            kind,
            message: e.to_string(),
        };
        let (id, avro) = match wire::split(record.payload) {
            Ok(split) => split,
            Err(e @ WireError::TooShort(_)) => return Ok(poison(PoisonKind::TooShort, &e)),
            Err(e) => return Ok(poison(PoisonKind::BadMagic, &e)),
        };
        // Most records share the last one's writer schema: its plan is kept here, no lock taken.
        if self.last.as_ref().is_none_or(|(last, _)| *last != id) {
            let failed = match self.plans.get(id) {
                None => return self.still_unknown(id).ok_or(id),
                Some(Fit::Rows(plan)) => {
                    self.last = Some((id, plan));
                    None
                }
                Some(Fit::Unfit { plan: Some(plan), why }) => Some(Poison::unfit(&plan, id, &why, avro, &mut self.walked)),
                Some(Fit::Unfit { plan: None, why }) => Some(Poison::Unfit { schema_id: id, why }),
            };
            if let Some(failed) = failed {
                return Ok(poison(failed.kind(None), &failed));
            }
        }
        let Some((_, plan)) = &self.last else {
            return Err(id);
        };
        if let Err(e) = into.decode(plan, (record.offset, record.key), avro, record.now, &mut self.scratch) {
            return Ok(poison(e.kind(plan.time_name()), &e));
        }
        // A table per tenant: a record that names none is dead-lettered now, before either sink has it.
        if let Some(route) = &self.plans.table().route {
            let line = into.last().map(|r| r.line).unwrap_or_default();
            if route.table_of(line).is_none() {
                let why = route.why_none(line);
                into.truncate(into.len().saturating_sub(1));
                return Ok(poison(PoisonKind::NoRoute, &why));
            }
        }
        Ok(Classified::Decoded)
    }

    fn still_unknown(&self, id: u32) -> Option<Classified> {
        let at = self.unknown.get(&id)?;
        (at.elapsed() < NEGATIVE_TTL).then(|| Classified::UnknownId {
            id,
            message: format!("schema {id} not found (asked {} ms ago)", at.elapsed().as_millis()),
        })
    }

    /// Whether the registry has a subject of the topic at all (cached for `NEGATIVE_TTL`). A registry
    /// without one cannot be the one this topic's producers registered with.
    pub async fn subject_known(&mut self) -> Result<bool, ClientError> {
        if let Some((at, known)) = self.subject_known {
            if at.elapsed() < NEGATIVE_TTL {
                return Ok(known);
            }
        }
        let known = match self.strategy {
            SubjectStrategy::Topic => match self.registry.latest(&format!("{}-value", self.topic)).await {
                Ok(_) => true,
                Err(e) if e.error_code() == Some(SUBJECT_NOT_FOUND) => false,
                Err(e) => return Err(e),
            },
            // The record's name is in no record: any subject that may hold the topic's schemas will do.
            strategy => {
                let subjects = self.registry.subjects().await?;
                subjects.iter().any(|s| strategy.may_hold(&self.topic, s))
            }
        };
        self.subject_known = Some((Instant::now(), known));
        Ok(known)
    }

    /// Forgets how every schema goes into the table: each is learnt again from the table as it is now
    /// (an operator changed it to resolve a hold).
    pub fn forget_plans(&mut self) {
        self.last = None;
        self.plans.forget();
    }

    /// Asks the registry about `id` again, now (during a pause for a registry that seemed wrong).
    pub async fn recheck(&mut self, id: u32) -> Recheck {
        self.unknown.remove(&id);
        self.subject_known = None;
        match self.learn(id).await {
            Ok(()) => Recheck::Known,
            Err(Classified::UnknownId { .. }) => Recheck::NotFound,
            Err(_) => Recheck::Unreachable,
        }
    }
}

/// A record to classify: where it is, its key and payload.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub offset: i64,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    /// Ms since the epoch: the event time of a schema without a timestamp field.
    pub now: i64,
}

/// The registry's answer about an id, asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// It has it now (and the table takes it).
    Known,
    NotFound,
    /// No definite answer yet (any `Outage`, the table included).
    Unreachable,
}
