//! `nrt mock-api`: the synthetic events API the Poller polls.
//!
//! `--seed` makes the stream reproducible (the same events, ids and times, in the same order), so a test
//! can regenerate what the pipeline must have delivered; `--limit` ends the stream so "drained" is
//! well defined. `POST /chaos` injects failures (HTTP 500, invalid JSON, slow answers) for the next N
//! requests, so the Poller's error handling can be tested against the real server.

use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::event::{Event, Extra, Millis, Money};

pub const MAX_BATCH: usize = 10_000;

#[derive(Debug, Clone, Args)]
pub struct MockApiArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, env = "NRT_MOCK_API_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Seed for a reproducible stream (ids, values and times); without it events are random, stamped now.
    #[arg(long, env = "NRT_MOCK_API_SEED")]
    pub seed: Option<u64>,
    /// Serve this many events in all, then empty answers.
    #[arg(long, env = "NRT_MOCK_API_LIMIT")]
    pub limit: Option<u64>,
    /// With --seed: the first event's created_at, in Unix milliseconds (default 2026-01-01T00:00:00Z).
    #[arg(long, env = "NRT_MOCK_API_EPOCH_MS", default_value_t = 1_767_225_600_000)]
    pub epoch_ms: i64,
    /// Serve at most this many events per second, on average since the first request (a source with
    /// a steady rate, as the rebalance tests need); unlimited without it.
    #[arg(long, env = "NRT_MOCK_API_RATE")]
    pub rate: Option<u64>,
    /// Events carry the fields `events.v2` added (`country`, `session_id`; each left out of some), as
    /// an events API that grew them would. The other fields are the same with or without it.
    #[arg(long, env = "NRT_MOCK_API_EXTRA_FIELDS")]
    pub extra_fields: bool,
    /// Serve records of this Avro record schema instead of events: random values drawn from the seed,
    /// in the lake's JSON mapping (docs/data.md), as a producer of that schema would send them.
    #[arg(long, env = "NRT_MOCK_API_SCHEMA")]
    pub schema: Option<std::path::PathBuf>,
}

/// Records of any schema, as JSON lines: a random datum along the plan (`avro::random`), written as the
/// lake writes it. Deterministic for a given seed, so a test can regenerate what it must find.
pub struct RecordGenerator {
    plan: crate::avro::Plan,
    rng: StdRng,
    /// The synthetic clock the records' timestamps follow (0–20 ms apart, as the events').
    clock: i64,
    datum: Vec<u8>,
}

impl RecordGenerator {
    pub fn seeded(plan: crate::avro::Plan, seed: u64, epoch_ms: i64) -> Self {
        RecordGenerator {
            plan,
            rng: StdRng::seed_from_u64(seed),
            clock: epoch_ms,
            datum: Vec::new(),
        }
    }

    /// The next record's JSON.
    pub fn next_line(&mut self) -> Vec<u8> {
        self.datum.clear();
        self.clock += self.rng.gen_range(0..20);
        crate::avro::random::datum(&self.plan, &mut self.rng, self.clock, &mut self.datum);
        let mut line = Vec::with_capacity(self.datum.len() * 2);
        // A datum written along the plan always walks; an empty object would be a bug of `random`.
        if crate::avro::json_line(&self.plan, &self.datum, &mut line).is_err() {
            line = b"{}".to_vec();
        }
        line
    }
}

const KINDS: [(&str, u32); 6] = [
    ("view", 40),
    ("add_to_cart", 20),
    ("purchase", 20),
    ("checkout", 10),
    ("signup", 6),
    ("refund", 4),
];
const CURRENCIES: [&str; 5] = ["EUR", "USD", "GBP", "CHF", "JPY"];
const COUNTRIES: [&str; 6] = ["DE", "FR", "US", "GB", "CH", "JP"];

/// The event stream. Deterministic for a given seed.
pub struct Generator {
    rng: StdRng,
    /// `Some(t)`: synthetic clock (seeded streams); `None`: the wall clock.
    clock: Option<i64>,
    /// Draws the `events.v2` fields when set: a stream of its own, so the other fields do not depend
    /// on whether they are drawn.
    extra: Option<StdRng>,
}

impl Generator {
    pub fn seeded(seed: u64, epoch_ms: i64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            clock: Some(epoch_ms),
            extra: None,
        }
    }

    /// The same stream, its events carrying `country` (in 3 of 4) and `session_id` (in 9 of 10).
    pub fn with_extra_fields(mut self) -> Self {
        let seed = self.rng.clone().gen::<u64>() ^ 0x5e55_10f1_e1d5;
        self.extra = Some(StdRng::seed_from_u64(seed));
        self
    }

    pub fn random() -> Self {
        Generator {
            rng: StdRng::from_entropy(),
            clock: None,
            extra: None,
        }
    }

    pub fn next_event(&mut self) -> Event {
        let event_id = uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid();
        let total: u32 = KINDS.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.gen_range(0..total);
        let kind = KINDS
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or("view", |(k, _)| k);
        let currency = CURRENCIES[self.rng.gen_range(0..CURRENCIES.len())];
        let cents = match kind {
            "purchase" | "refund" | "checkout" => self.rng.gen_range(100..=50_000),
            _ => 0,
        };
        // Yen has no minor unit: whole amounts only.
        let cents = if currency == "JPY" {
            cents / 100 * 100
        } else {
            cents
        };
        let created_at = match &mut self.clock {
            Some(t) => {
                *t += self.rng.gen_range(0..20);
                Millis(*t)
            }
            None => Millis::now(),
        };
        Event {
            event_id,
            kind: kind.into(),
            user_id: self.rng.gen_range(1..=100_000),
            amount: Money(cents),
            currency: currency.into(),
            created_at,
            extra: self.extra.as_mut().and_then(|rng| {
                let country = (rng.gen_range(0..4) > 0).then(|| COUNTRIES[rng.gen_range(0..COUNTRIES.len())].into());
                let session_id = (rng.gen_range(0..10) > 0).then(|| format!("s-{:016x}", rng.gen::<u64>()).into());
                Extra::boxed(country, session_id)
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChaosMode {
    /// Answer 500.
    Error,
    /// Answer 200 with a body that is not JSON.
    BadJson,
    /// Answer 200 with events that miss a field.
    MissingField,
    /// Answer correctly, after `delay_ms`.
    Slow,
    /// Answer 503 after `delay_ms`, handing out no event: a stalled API that a client gives up on
    /// (a timed-out request loses nothing).
    Hang,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chaos {
    pub mode: ChaosMode,
    /// How many event requests it applies to.
    pub requests: u32,
    #[serde(default)]
    pub delay_ms: u64,
}

struct State {
    gen: Generator,
    /// `--schema`: records of that schema instead of events.
    records: Option<RecordGenerator>,
    served: u64,
    limit: Option<u64>,
    /// Events per second, counted from `first_request`.
    rate: Option<u64>,
    first_request: Option<std::time::Instant>,
    chaos: Option<Chaos>,
    faults: u64,
}

type Shared = web::Data<Mutex<State>>;

enum Answer {
    Events(Vec<Event>),
    /// `--schema`: each record's JSON.
    Lines(Vec<Vec<u8>>),
    Fault(ChaosMode),
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes up to `n` events, unless a fault is due.
fn take(state: &Shared, n: usize) -> Answer {
    let mut s = lock(state);
    if let Some(chaos) = s.chaos.as_mut() {
        let (mode, delay) = (chaos.mode, chaos.delay_ms);
        chaos.requests = chaos.requests.saturating_sub(1);
        if chaos.requests == 0 {
            s.chaos = None;
        }
        if mode != ChaosMode::Slow {
            s.faults += 1;
            if mode == ChaosMode::Hang {
                drop(s);
                std::thread::sleep(Duration::from_millis(delay.min(30_000)));
            }
            return Answer::Fault(mode);
        }
        let answer = take_items(&mut s, n);
        if delay > 0 {
            drop(s);
            std::thread::sleep(Duration::from_millis(delay.min(30_000)));
        }
        return answer;
    }
    take_items(&mut s, n)
}

/// Up to `n` events, or records of `--schema`.
fn take_items(s: &mut State, n: usize) -> Answer {
    let n = due(s, n);
    match s.records.as_mut() {
        Some(records) => Answer::Lines((0..n).map(|_| records.next_line()).collect()),
        None => Answer::Events((0..n).map(|_| s.gen.next_event()).collect()),
    }
}

/// How many of `n` asked for may be served now (the limit, the rate), counted as served.
fn due(s: &mut State, n: usize) -> usize {
    let left = s.limit.map_or(n as u64, |l| l.saturating_sub(s.served));
    let since = s.first_request.get_or_insert_with(std::time::Instant::now).elapsed();
    let allowed = s.rate.map_or(u64::MAX, |r| {
        let due = (r as u128 * since.as_millis() / 1000).min(u64::MAX as u128) as u64;
        due.saturating_sub(s.served)
    });
    let n = (n as u64).min(left).min(allowed) as usize;
    s.served += n as u64;
    n
}

/// A JSON array of the lines.
fn array(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(line);
    }
    body.push(b']');
    body
}

fn fault_response(mode: ChaosMode) -> HttpResponse {
    match mode {
        ChaosMode::Error => HttpResponse::InternalServerError().json(json!({"error": "injected failure"})),
        ChaosMode::BadJson => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"events\": [tru"),
        ChaosMode::Hang => HttpResponse::ServiceUnavailable().json(json!({"error": "injected stall"})),
        _ => HttpResponse::Ok().json(json!([{"event_id": Uuid::nil(), "type": "view"}])),
    }
}

async fn one_event(state: Shared) -> HttpResponse {
    let answer = web::block(move || take(&state, 1)).await;
    match answer {
        Ok(Answer::Events(mut events)) => match events.pop() {
            Some(e) => HttpResponse::Ok().json(e),
            None => HttpResponse::NoContent().finish(),
        },
        Ok(Answer::Lines(mut lines)) => match lines.pop() {
            Some(line) => HttpResponse::Ok().content_type("application/json").body(line),
            None => HttpResponse::NoContent().finish(),
        },
        Ok(Answer::Fault(mode)) => fault_response(mode),
        Err(e) => HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
    }
}

#[derive(Deserialize)]
struct BatchQuery {
    n: Option<String>,
}

async fn events(state: Shared, q: web::Query<BatchQuery>) -> HttpResponse {
    let n = match q.n.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_BATCH).contains(&n) => n,
        _ => {
            return HttpResponse::BadRequest()
                .json(json!({"error": format!("n must be an integer from 1 to {MAX_BATCH}")}))
        }
    };
    match web::block(move || take(&state, n)).await {
        Ok(Answer::Events(events)) => HttpResponse::Ok().json(events),
        Ok(Answer::Lines(lines)) => HttpResponse::Ok().content_type("application/json").body(array(&lines)),
        Ok(Answer::Fault(mode)) => fault_response(mode),
        Err(e) => HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
    }
}

async fn health(state: Shared) -> HttpResponse {
    let s = lock(&state);
    HttpResponse::Ok().json(json!({"status": "ok", "served": s.served, "faults": s.faults, "limit": s.limit}))
}

async fn chaos(state: Shared, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<Chaos>(&body) {
        Ok(c) => {
            lock(&state).chaos = (c.requests > 0).then_some(c);
            HttpResponse::Ok().json(json!({"status": "armed"}))
        }
        Err(e) => HttpResponse::BadRequest().json(json!({"error": format!("invalid chaos body: {e}")})),
    }
}

pub async fn serve(args: &MockApiArgs) -> anyhow::Result<()> {
    let gen = match args.seed {
        Some(seed) => Generator::seeded(seed, args.epoch_ms),
        None => Generator::random(),
    };
    let gen = match args.extra_fields {
        true => gen.with_extra_fields(),
        false => gen,
    };
    let records = match &args.schema {
        Some(path) => {
            let text = crate::config::read_schema("NRT_MOCK_API_SCHEMA / --schema", path).map_err(anyhow::Error::msg)?;
            let schema = apache_avro::Schema::parse_str(&text)
                .map_err(|e| anyhow::anyhow!("mock-api: {}: not an Avro schema: {e}", path.display()))?;
            let plan = crate::avro::Plan::new(&schema)
                .map_err(|e| anyhow::anyhow!("mock-api: {}: {e}", path.display()))?;
            let seed = args.seed.unwrap_or_else(rand::random);
            Some(RecordGenerator::seeded(plan, seed, args.epoch_ms))
        }
        None => None,
    };
    let state: Shared = web::Data::new(Mutex::new(State {
        gen,
        records,
        served: 0,
        limit: args.limit,
        rate: args.rate,
        first_request: None,
        chaos: None,
        faults: 0,
    }));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                actix_web::error::InternalError::from_response(
                    e.to_string(),
                    HttpResponse::BadRequest().json(json!({"error": e.to_string()})),
                )
                .into()
            }))
            .route("/event", web::get().to(one_event))
            .route("/events", web::get().to(events))
            .route("/health", web::get().to(health))
            .route("/chaos", web::post().to(chaos))
    })
    .bind(&args.listen)
    .map_err(|e| anyhow::anyhow!("mock-api: cannot listen on {}: {e}", args.listen))?;
    for addr in server.addrs() {
        println!("nrt mock-api listening on http://{addr}");
    }
    server.run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_and_are_valid() {
        let a: Vec<Event> = {
            let mut g = Generator::seeded(7, 1_767_225_600_000);
            (0..1000).map(|_| g.next_event()).collect()
        };
        let mut g = Generator::seeded(7, 1_767_225_600_000);
        let b: Vec<Event> = (0..1000).map(|_| g.next_event()).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|e| e.validate().is_ok()));
        assert!(a.windows(2).all(|w| w[0].created_at <= w[1].created_at));
        assert_eq!(a[0].created_at.0 / 1000, 1_767_225_600);
        let ids: std::collections::HashSet<_> = a.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), a.len());
        assert!(a.iter().all(|e| e.event_id.get_version_num() == 4));
        assert!(a
            .iter()
            .filter(|e| e.currency == "JPY")
            .all(|e| e.amount.0 % 100 == 0));
        assert!(a.iter().any(|e| e.amount.0 > 0) && a.iter().any(|e| e.kind == "signup"));
    }

    #[test]
    fn seeded_records_of_a_schema_repeat() {
        let text = include_str!("../tests/fixtures/every_type.avsc");
        let schema = apache_avro::Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        let plan = crate::avro::Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
        let lines = |seed| {
            let mut g = RecordGenerator::seeded(plan.clone(), seed, 1_767_225_600_000);
            (0..200).map(|_| g.next_line()).collect::<Vec<_>>()
        };
        assert_eq!(lines(5), lines(5));
        assert_ne!(lines(5), lines(6));
        let body = array(&lines(5));
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.len(), 200);
        assert!(parsed.iter().all(|r| r["id"].is_i64() && r["at_ms"].as_str().is_some_and(|t| t.starts_with("2026-"))));
    }
}
