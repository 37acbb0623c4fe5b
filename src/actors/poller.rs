//! Poller: asks the events API for batches (`GET /events?n=`), validates them, and hands each batch to
//! the Encoder, waiting for Kafka's acknowledgement before polling again (that wait is the producer's
//! backpressure). API failures are counted by kind, logged without flooding, and backed off; a batch
//! already polled is retried until published, never dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::task::JoinHandle;

use super::encoder::{Encoder, Events, Polled};
use super::messages::PublishError;
use super::Shared;
use crate::internal_events::{NotPublished, PollFailed, Throttle};
use crate::retry::{Next, RetryPolicy};

pub const NAME: &str = "poller";

pub struct PollSettings {
    pub api_url: String,
    pub batch: u32,
    pub interval: Duration,
    /// A request that has not answered by then counts as failed (`timeout`) and is retried.
    pub timeout: Duration,
    /// The producer's schema is not the built-in events record: the API's answers are JSON records
    /// the Encoder reads along that schema, not events.
    pub records: bool,
}

/// Stop polling; replies once the batch in hand (if any) is published, so nothing polled is dropped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// What outlives a restart of the Poller (the actor's struct is kept across restarts; its context and
/// the futures spawned on it are not). The events API hands each event out once, so a batch it served
/// must never be held only by something a restart cancels: each poll runs as its own task, apart from
/// the actor, from the request to the hand-over of its batch (see `poll_once`).
#[derive(Default)]
struct Lifeline {
    stop_requested: AtomicBool,
    finished: AtomicBool,
    done: tokio::sync::Notify,
    /// The poll under way: a loop started after a restart waits for it before polling again.
    polling: tokio::sync::Mutex<Option<JoinHandle<PollEnd>>>,
    /// The delivery of the last batch handed over: the next one starts after it (batches reach the
    /// Encoder one after the other, in order) and a shutdown waits for it.
    delivering: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Lifeline {
    fn take_delivery(&self) -> Option<JoinHandle<()>> {
        self.delivering.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn set_delivery(&self, delivery: JoinHandle<()>) {
        *self.delivering.lock().unwrap_or_else(|p| p.into_inner()) = Some(delivery);
    }
}

pub struct Poller {
    settings: Arc<PollSettings>,
    lifeline: Arc<Lifeline>,
    http: reqwest::Client,
    encoder: Addr<Encoder>,
    shared: Shared,
}

impl Poller {
    pub fn new(settings: PollSettings, encoder: Addr<Encoder>, shared: Shared) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(settings.timeout).build()?;
        Ok(Poller {
            settings: Arc::new(settings),
            lifeline: Arc::default(),
            http,
            encoder,
            shared,
        })
    }
}

/// Why a poll brought nothing usable: its `kind` is the label of `nrt_poll_errors_total`.
#[derive(Debug)]
struct PollError {
    kind: PollErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollErrorKind {
    /// No connection to the events API.
    Connect,
    Timeout,
    /// Any other failure of the request.
    Request,
    /// The answer's body could not be read (or parsing it stopped).
    Body,
    /// An answer that is not 2xx.
    HttpStatus,
    /// A body that is not the JSON expected.
    BadJson,
    /// A batch with no valid event in it.
    InvalidBatch,
}

impl PollErrorKind {
    pub fn label(self) -> &'static str {
        match self {
            PollErrorKind::Connect => "connect",
            PollErrorKind::Timeout => "timeout",
            PollErrorKind::Request => "request",
            PollErrorKind::Body => "body",
            PollErrorKind::HttpStatus => "http_status",
            PollErrorKind::BadJson => "bad_json",
            PollErrorKind::InvalidBatch => "invalid_batch",
        }
    }
}

fn poll_error(kind: PollErrorKind, message: impl Into<String>) -> PollError {
    PollError {
        kind,
        message: message.into(),
    }
}

/// How one poll ended: its batch handed over (and whether it was full), or an error.
type PollEnd = Result<bool, PollError>;

/// What a poll needs, cloned into each poll's own task.
#[derive(Clone)]
struct Polling {
    url: String,
    batch: usize,
    records: bool,
    http: reqwest::Client,
    encoder: Addr<Encoder>,
    shared: Shared,
    lifeline: Arc<Lifeline>,
}

impl Actor for Poller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.health.running(NAME);
        let polling = Polling {
            url: format!(
                "{}/events?n={}",
                self.settings.api_url.trim_end_matches('/'),
                self.settings.batch
            ),
            batch: self.settings.batch as usize,
            records: self.settings.records,
            http: self.http.clone(),
            encoder: self.encoder.clone(),
            shared: self.shared.clone(),
            lifeline: self.lifeline.clone(),
        };
        // Also after a shutdown was asked for: the loop then only waits for what is under way.
        ctx.spawn(poll_loop(self.settings.clone(), polling).into_actor(self));
    }
}

impl Handler<Shutdown> for Poller {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let lifeline = self.lifeline.clone();
        lifeline.stop_requested.store(true, Ordering::SeqCst);
        Box::pin(async move {
            while !lifeline.finished.load(Ordering::SeqCst) {
                let _ = tokio::time::timeout(Duration::from_millis(100), lifeline.done.notified()).await;
            }
        })
    }
}

impl Supervised for Poller {}

/// Polls until a shutdown is asked for, one poll at a time; then waits for the last delivery.
async fn poll_loop(settings: Arc<PollSettings>, polling: Polling) {
    let lifeline = polling.lifeline.clone();
    let shared = polling.shared.clone();
    let mut backoff = RetryPolicy::SERVICE.backoff();
    let mut streak: u64 = 0;
    let mut throttle = Throttle::default();
    loop {
        // The handle stays in the lifeline while it is awaited: a restart meanwhile drops only this
        // loop, and the next loop waits for the same poll.
        let polled = {
            let mut under_way = lifeline.polling.lock().await;
            if under_way.is_none() && !lifeline.stop_requested.load(Ordering::SeqCst) {
                *under_way = Some(actix::spawn(poll_once(polling.clone())));
            }
            let Some(task) = under_way.as_mut() else { break };
            let polled = task.await;
            *under_way = None;
            polled
        };
        let polled = polled.unwrap_or_else(|e| Err(poll_error(PollErrorKind::Body, format!("the poll stopped: {e}"))));
        match polled {
            Err(e) => {
                streak += 1;
                let failed = PollFailed {
                    kind: e.kind,
                    message: &e.message,
                    streak,
                };
                failed.emit(&shared.metrics, &shared.health, &mut throttle);
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Ok(full) => {
                if streak > 0 {
                    log::info!("{NAME}: events API answers again after {streak} failure(s)");
                    streak = 0;
                    throttle.reset();
                    backoff.reset();
                    shared.health.running(NAME);
                }
                if !full {
                    tokio::time::sleep(settings.interval).await;
                }
            }
        }
    }
    if let Some(last) = lifeline.take_delivery() {
        let _ = last.await;
    }
    lifeline.finished.store(true, Ordering::SeqCst);
    lifeline.done.notify_waiters();
}

/// One poll, in a task of its own: fetch a batch, wait for the previous batch's delivery, start this
/// one's. Nothing it fetched depends on the actor being alive: a restart while it runs loses nothing.
async fn poll_once(p: Polling) -> PollEnd {
    let events = fetch(&p.http, &p.url, p.records, &p.shared).await?;
    let full = events.len() >= p.batch;
    if events.is_empty() {
        return Ok(full);
    }
    p.shared.metrics.events_polled.inc_by(events.len() as u64);
    // Fetching and publishing overlap one batch deep: this batch waits for the previous one.
    if let Some(previous) = p.lifeline.take_delivery() {
        let _ = previous.await;
    }
    // A random number, not a count: it must never repeat, even after this actor restarts (the
    // publisher answers a number it has seen committed without producing again).
    let batch: u64 = rand::random();
    let (encoder, shared) = (p.encoder.clone(), p.shared.clone());
    p.lifeline.set_delivery(actix::spawn(async move {
        deliver(batch, Arc::new(events), &encoder, &shared).await
    }));
    Ok(full)
}

/// Hands a polled batch on until Kafka has it: polled events are never dropped.
async fn deliver(batch: u64, events: Arc<Polled>, encoder: &Addr<Encoder>, shared: &Shared) {
    let attempt = || async {
        let msg = Events {
            batch,
            events: events.clone(),
        };
        match encoder.send(msg).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(PublishError::actor_gone(super::encoder::NAME, e)),
        }
    };
    let mut throttle = Throttle::default();
    let published = RetryPolicy::SERVICE.run(attempt, |error, _| {
        let not_yet = NotPublished {
            error,
            events: events.len(),
        };
        not_yet.emit(&shared.metrics, &shared.health, &mut throttle);
        Next::Retry
    });
    // Never gives up, so it never fails.
    let _ = published.await;
}

async fn fetch(http: &reqwest::Client, url: &str, records: bool, shared: &Shared) -> Result<Polled, PollError> {
    let resp = http.get(url).send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            PollErrorKind::Timeout
        } else if e.is_connect() {
            PollErrorKind::Connect
        } else {
            PollErrorKind::Request
        };
        poll_error(kind, format!("GET {url}: {e}"))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(poll_error(
            PollErrorKind::HttpStatus,
            format!("GET {url}: HTTP {}", status.as_u16()),
        ));
    }
    let body = resp.bytes().await.map_err(|e| {
        poll_error(
            if e.is_timeout() { PollErrorKind::Timeout } else { PollErrorKind::Body },
            format!("GET {url}: {e}"),
        )
    })?;
    if records {
        // Each element is checked against the schema by the Encoder (a misfit is a dead letter).
        let parsed = tokio::task::spawn_blocking(move || serde_json::from_slice::<Vec<serde_json::Value>>(&body))
            .await
            .map_err(|e| poll_error(PollErrorKind::Body, format!("GET {url}: parsing stopped: {e}")))?;
        let values = parsed.map_err(|e| poll_error(PollErrorKind::BadJson, format!("GET {url}: not a JSON array: {e}")))?;
        return Ok(Polled::Records(values));
    }
    // Parsing is CPU work (~2 µs per event): off the actors' thread.
    let parsed = tokio::task::spawn_blocking(move || crate::event::parse_events(&body))
        .await
        .map_err(|e| poll_error(PollErrorKind::Body, format!("GET {url}: parsing stopped: {e}")))?;
    let (events, invalid) = parsed.map_err(|e| poll_error(PollErrorKind::BadJson, format!("GET {url}: {e}")))?;
    if !invalid.is_empty() {
        shared
            .metrics
            .poll_errors
            .with_label_values(&["invalid_event"])
            .inc_by(invalid.len() as u64);
    }
    match (events.is_empty(), invalid.into_iter().next()) {
        // Nothing usable at all: treat the answer as a failed poll (counted above per event).
        (true, Some(msg)) => Err(poll_error(PollErrorKind::InvalidBatch, format!("GET {url}: {msg}"))),
        _ => Ok(Polled::Events(events)),
    }
}

#[cfg(test)]
mod tests {
    use super::PollErrorKind::*;
    use crate::actors::messages::PublishError;
    use crate::metrics::POLL_ERROR_KINDS;

    #[test]
    fn every_kind_counted_is_a_label_the_metric_starts_with() {
        for kind in [Connect, Timeout, Request, Body, HttpStatus, BadJson, InvalidBatch] {
            assert!(POLL_ERROR_KINDS.contains(&kind.label()), "{kind:?}");
        }
        let gone = PublishError::actor_gone("encoder", "mailbox closed");
        for e in [
            PublishError::SchemaRefused(String::new()),
            PublishError::Registry(String::new()),
            PublishError::Encode(String::new()),
            PublishError::Kafka(String::new()),
            gone,
        ] {
            assert!(POLL_ERROR_KINDS.contains(&e.kind()), "{e:?}");
        }
    }
}
