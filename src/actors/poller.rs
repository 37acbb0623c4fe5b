//! Poller: asks the events API for batches (`GET /events?n=`), validates them, and hands each batch to
//! the Encoder, waiting for Kafka's acknowledgement before polling again (that wait is the producer's
//! backpressure). API failures are counted by kind, logged without flooding, and backed off; a batch
//! already polled is retried until published, never dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::encoder::{Encoder, Events};
use super::Shared;
use crate::event::Event;
use crate::retry::{Next, RetryPolicy};

pub const NAME: &str = "poller";

pub struct PollSettings {
    pub api_url: String,
    pub batch: u32,
    pub interval: Duration,
    /// A request that has not answered by then counts as failed (`timeout`) and is retried.
    pub timeout: Duration,
}

/// Stop polling; replies once the batch in hand (if any) is published, so nothing polled is dropped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

#[derive(Default)]
struct Stop {
    requested: AtomicBool,
    finished: AtomicBool,
    done: tokio::sync::Notify,
}

pub struct Poller {
    settings: Arc<PollSettings>,
    stop: Arc<Stop>,
    http: reqwest::Client,
    encoder: Addr<Encoder>,
    shared: Shared,
}

impl Poller {
    pub fn new(settings: PollSettings, encoder: Addr<Encoder>, shared: Shared) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Poller {
            settings: Arc::new(settings),
            stop: Arc::default(),
            http,
            encoder,
            shared,
        })
    }
}

/// Why a poll brought nothing usable; the label of `nrt_poll_errors_total`.
#[derive(Debug)]
struct PollError {
    kind: &'static str,
    message: String,
}

fn poll_error(kind: &'static str, message: impl Into<String>) -> PollError {
    PollError {
        kind,
        message: message.into(),
    }
}

impl Actor for Poller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.health.running(NAME);
        if self.stop.requested.load(Ordering::SeqCst) {
            return;
        }
        let stop = self.stop.clone();
        let job = poll_loop(
            self.settings.clone(),
            self.http.clone(),
            self.encoder.clone(),
            self.shared.clone(),
            stop.clone(),
        );
        ctx.spawn(
            async move {
                job.await;
                stop.finished.store(true, Ordering::SeqCst);
                stop.done.notify_waiters();
            }
            .into_actor(self),
        );
    }
}

impl Handler<Shutdown> for Poller {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let stop = self.stop.clone();
        stop.requested.store(true, Ordering::SeqCst);
        Box::pin(async move {
            while !stop.finished.load(Ordering::SeqCst) {
                let _ = tokio::time::timeout(Duration::from_millis(100), stop.done.notified()).await;
            }
        })
    }
}

impl Supervised for Poller {}

async fn poll_loop(
    settings: Arc<PollSettings>,
    http: reqwest::Client,
    encoder: Addr<Encoder>,
    shared: Shared,
    stop: Arc<Stop>,
) {
    let url = format!(
        "{}/events?n={}",
        settings.api_url.trim_end_matches('/'),
        settings.batch
    );
    let mut backoff = RetryPolicy::SERVICE.backoff();
    let mut streak: u64 = 0;
    // The batch being published while the next one is fetched: fetching and publishing overlap, one
    // batch deep, and batches still reach the Encoder one after the other, in order.
    let mut publishing: Option<tokio::task::JoinHandle<()>> = None;
    while !stop.requested.load(Ordering::SeqCst) {
        let events = match fetch(&http, &url, &shared).await {
            Ok(events) => events,
            Err(e) => {
                shared.metrics.poll_errors.with_label_values(&[e.kind]).inc();
                streak += 1;
                // The first failure of a streak and every 50th after it: enough to see, not a flood.
                if streak == 1 || streak % 50 == 0 {
                    log::warn!(
                        "{NAME}: {} ({}), {streak} failure(s) in a row; backing off",
                        e.message,
                        e.kind
                    );
                }
                shared.health.error(NAME, format!("{}: {}", e.kind, e.message));
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        if streak > 0 {
            log::info!("{NAME}: events API answers again after {streak} failure(s)");
            streak = 0;
            backoff.reset();
            shared.health.running(NAME);
        }
        let full = events.len() >= settings.batch as usize;
        if !events.is_empty() {
            shared.metrics.events_polled.inc_by(events.len() as u64);
            if let Some(previous) = publishing.take() {
                let _ = previous.await;
            }
            // A random number, not a count: it must never repeat, even after this actor restarts
            // (the publisher answers a number it has seen committed without producing again).
            let batch: u64 = rand::random();
            let (encoder, shared) = (encoder.clone(), shared.clone());
            // Spawned apart from the actor, so a restart of the Poller cannot drop a batch in hand.
            publishing = Some(actix::spawn(async move {
                deliver(batch, Arc::new(events), &encoder, &shared).await
            }));
        }
        if !full {
            tokio::time::sleep(settings.interval).await;
        }
    }
    if let Some(last) = publishing {
        let _ = last.await;
    }
}

/// Hands a polled batch on until Kafka has it: polled events are never dropped.
async fn deliver(batch: u64, events: Arc<Vec<Event>>, encoder: &Addr<Encoder>, shared: &Shared) {
    let attempt = || async {
        let msg = Events {
            batch,
            events: events.clone(),
        };
        match encoder.send(msg).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("encoder unavailable: {e}")),
        }
    };
    let published = RetryPolicy::SERVICE.run(attempt, |err, failures| {
        shared.metrics.poll_errors.with_label_values(&["publish"]).inc();
        if failures % 10 == 0 {
            log::warn!(
                "{NAME}: batch of {} not published yet: {err}; retrying",
                events.len()
            );
        }
        shared.health.error(NAME, err.clone());
        Next::Retry
    });
    // Never gives up, so it never fails.
    let _ = published.await;
}

async fn fetch(http: &reqwest::Client, url: &str, shared: &Shared) -> Result<Vec<Event>, PollError> {
    let resp = http.get(url).send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "request"
        };
        poll_error(kind, format!("GET {url}: {e}"))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(poll_error(
            "http_status",
            format!("GET {url}: HTTP {}", status.as_u16()),
        ));
    }
    let body = resp.bytes().await.map_err(|e| {
        poll_error(
            if e.is_timeout() { "timeout" } else { "body" },
            format!("GET {url}: {e}"),
        )
    })?;
    // Parsing is CPU work (~2 µs per event): off the actors' thread.
    let parsed = tokio::task::spawn_blocking(move || crate::event::parse_events(&body))
        .await
        .map_err(|e| poll_error("body", format!("GET {url}: parsing stopped: {e}")))?;
    let (events, invalid) = parsed.map_err(|e| poll_error("bad_json", format!("GET {url}: {e}")))?;
    if !invalid.is_empty() {
        shared
            .metrics
            .poll_errors
            .with_label_values(&["invalid_event"])
            .inc_by(invalid.len() as u64);
    }
    match (events.is_empty(), invalid.into_iter().next()) {
        // Nothing usable at all: treat the answer as a failed poll (counted above per event).
        (true, Some(msg)) => Err(poll_error("invalid_batch", format!("GET {url}: {msg}"))),
        _ => Ok(events),
    }
}
