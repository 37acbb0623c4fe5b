//! The admin API of `nrt run` (actix-web): `/` the status page for people (status.rs), `/health`
//! liveness, `/ready` readiness, `/metrics` for Prometheus, `/actors` as JSON; `POST
//! /actors/{name}/restart` and `POST /flush` behind the admin token. Nothing here echoes configuration
//! or credentials.

pub mod history;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use std::collections::BTreeMap;

use actix::Recipient;

use crate::actors::batcher::FlushNow;
use crate::actors::health::Health;
use crate::actors::messages::Restart;
use crate::config::{Role, ServicesConfig};
use crate::metrics::{self, PipelineMetrics};
use crate::probes::{self, Service};

/// What the admin API serves of one pipeline.
pub struct PipelineState {
    /// The pipeline's name in a pipelines file; None for the one pipeline of the environment.
    pub name: Option<String>,
    pub health: Arc<Health>,
    pub restarters: BTreeMap<&'static str, Recipient<Restart>>,
    /// The consumer's Batcher, for `POST /flush` (none in the producer role).
    pub flusher: Option<Recipient<FlushNow>>,
    #[cfg(debug_assertions)]
    pub crashers: crate::actors::fault::Crashers,
    pub metrics: PipelineMetrics,
    /// The last minutes of the metrics, for the status page.
    pub history: Arc<history::History>,
}

impl PipelineState {
    /// How the API names an actor of this pipeline: `batcher`, or `orders:batcher` in a file's pipeline.
    fn actor_name(&self, actor: &str) -> String {
        match &self.name {
            Some(p) => format!("{p}:{actor}"),
            None => actor.to_owned(),
        }
    }
}

pub struct AdminState {
    /// At least one; several only from a pipelines file, whose patterns may add more while running.
    pub pipelines: Arc<std::sync::RwLock<Vec<Arc<PipelineState>>>>,
    /// The process's own metrics beside a pipelines file's pipelines (the environment's one pipeline
    /// has them in its registry).
    pub process_metrics: Option<prometheus::Registry>,
    /// Guards the mutating endpoints; empty switches them off.
    pub token: crate::config::Secret,
    pub services: ServicesConfig,
    /// The services' clients for `/ready`, built once.
    pub probes: Arc<probes::Probes>,
    pub role: Role,
    pub http: reqwest::Client,
    pub started: std::time::Instant,
    /// Grafana (or any dashboards) for the status page's links; empty: none.
    pub dashboards_url: String,
}

impl AdminState {
    /// The pipelines as they are now.
    fn pipelines(&self) -> Vec<Arc<PipelineState>> {
        self.pipelines.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pipeline and actor of an API name (`batcher`, `orders:batcher`).
    fn find(&self, name: &str) -> Option<(Arc<PipelineState>, String)> {
        let pipelines = self.pipelines();
        let (pipeline, actor) = match name.split_once(':') {
            Some((p, actor)) => (pipelines.into_iter().find(|s| s.name.as_deref() == Some(p))?, actor),
            None => (pipelines.into_iter().find(|s| s.name.is_none())?, name),
        };
        Some((pipeline, actor.to_owned()))
    }

    /// What this role depends on: the producer needs Kafka and the registry; the consumer all four sinks
    /// and sources.
    fn dependencies(&self) -> Vec<Service> {
        let mut deps = vec![Service::Kafka, Service::Registry];
        if self.role.consumes() {
            deps.extend([Service::Minio, Service::Clickhouse]);
        }
        deps
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(state: web::Data<AdminState>) -> HttpResponse {
    let results = state.probes.all(&state.dependencies()).await;
    let mut not_running = Vec::new();
    // Why each actor that is not running holds back (a refused schema, a crash loop…).
    let mut why = serde_json::Map::new();
    let mut pipelines = serde_json::Map::new();
    for p in &state.pipelines() {
        let actors = p.health.snapshot();
        let stopped = p.health.not_running();
        for a in &stopped {
            if let Some(error) = actors.get(a).and_then(|s| s.last_error.clone()) {
                why.insert(p.actor_name(a), json!(error));
            }
        }
        if let Some(name) = &p.name {
            pipelines.insert(name.clone(), json!({"ready": stopped.is_empty(), "actors_not_running": stopped}));
        }
        not_running.extend(stopped.iter().map(|a| p.actor_name(a)));
    }
    let down: Vec<&str> = results
        .iter()
        .filter(|p| !p.ok)
        .map(|p| p.service.name())
        .collect();
    let services: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|p| {
            (
                p.service.name().to_owned(),
                json!({"ok": p.ok, "detail": p.detail}),
            )
        })
        .collect();
    let is_ready = down.is_empty() && not_running.is_empty();
    let mut body = json!({
        "ready": is_ready,
        "services_down": down,
        "actors_not_running": not_running,
        "why": why,
        "services": services,
    });
    if !pipelines.is_empty() {
        body["pipelines"] = serde_json::Value::Object(pipelines);
    }
    if is_ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics_text(state: web::Data<AdminState>) -> HttpResponse {
    let pipelines = state.pipelines();
    let mut registries: Vec<&prometheus::Registry> = pipelines.iter().map(|p| &p.metrics.registry).collect();
    registries.extend(&state.process_metrics);
    match metrics::encode_all(&registries) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(e) => HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
    }
}

async fn status_page(state: web::Data<AdminState>, req: actix_web::HttpRequest) -> HttpResponse {
    // A pipelines file's pipelines each have a page: `/?pipeline=<name>` (the first by default).
    let asked = req.query_string().strip_prefix("pipeline=");
    let pipelines = state.pipelines();
    if pipelines.is_empty() && asked.is_none() {
        let html = status::waiting_page(state.role, state.started.elapsed());
        return HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html);
    }
    let Some(p) = pipelines.iter().find(|p| asked.is_none() || p.name.as_deref() == asked) else {
        return HttpResponse::NotFound().json(json!({"error": "no such pipeline"}));
    };
    let others: Vec<(String, bool)> = pipelines
        .iter()
        .filter_map(|o| Some((o.name.clone()?, o.name == p.name)))
        .collect();
    let links = status::Links {
        registry: state.services.registry.url.clone(),
        prometheus: state.services.prometheus.url.clone(),
        dashboards: state.dashboards_url.clone(),
    };
    let html = status::Page {
        role: state.role,
        uptime: state.started.elapsed(),
        actors: &p.health.snapshot(),
        commits: &p.health.commits(),
        samples: &p.history.samples(),
        metrics: &p.metrics,
        links: &links,
        pipelines: &others,
    }
    .render();
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html)
}

/// Each actor's state; a pipelines file's pipelines each under their name.
async fn actors(state: web::Data<AdminState>) -> HttpResponse {
    match state.pipelines().as_slice() {
        [one] if one.name.is_none() => HttpResponse::Ok().json(one.health.snapshot()),
        all => {
            let by_pipeline: BTreeMap<String, _> = all
                .iter()
                .map(|p| (p.name.clone().unwrap_or_default(), p.health.snapshot()))
                .collect();
            HttpResponse::Ok().json(by_pipeline)
        }
    }
}

/// Stops an actor; its supervisor restarts it at once (or after its backoff, if it keeps failing).
async fn restart(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    if let Some(refused) = refusal(&state.token, &req) {
        return refused;
    }
    deliver(&state, &name, |p| &p.restarters, Restart, "restarting")
}

/// Sends `msg` to the actor the API calls `name` (`batcher`, or `orders:batcher` in a file's
/// pipeline): 202 naming it, or 404.
fn deliver<M>(
    state: &AdminState,
    name: &str,
    actors: impl Fn(&PipelineState) -> &BTreeMap<&'static str, Recipient<M>>,
    msg: M,
    done: &str,
) -> HttpResponse
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
{
    let found = state.find(name);
    match found.as_ref().and_then(|(p, actor)| actors(p).get(actor.as_str())) {
        Some(actor) => {
            actor.do_send(msg);
            HttpResponse::Accepted().json(json!({ done: name }))
        }
        None => HttpResponse::NotFound().json(json!({"error": format!("no actor named {name}")})),
    }
}

/// Writes every open batch now instead of at its flush time.
async fn flush(state: web::Data<AdminState>, req: actix_web::HttpRequest) -> HttpResponse {
    if let Some(refused) = refusal(&state.token, &req) {
        return refused;
    }
    let pipelines = state.pipelines();
    let batchers: Vec<&Recipient<FlushNow>> = pipelines.iter().filter_map(|p| p.flusher.as_ref()).collect();
    if batchers.is_empty() {
        return HttpResponse::NotFound().json(json!({"error": "no consumer in this role: nothing to flush"}));
    }
    let mut flushing = 0;
    for batcher in batchers {
        match batcher.send(FlushNow).await {
            Ok(n) => flushing += n,
            Err(e) => return HttpResponse::ServiceUnavailable().json(json!({"error": format!("batcher: {e}")})),
        }
    }
    HttpResponse::Accepted().json(json!({"flushing": flushing}))
}

/// Debug builds only (`debug_assertions`): make an actor stop (`?how=stop`, the default) or panic
/// (`?how=panic`) as a bug would, or panic in the middle of its next batch (`?how=panic-mid-batch`:
/// the Encoder after its batch was published, the KafkaPublisher before committing the transaction);
/// its supervisor restarts it.
#[cfg(debug_assertions)]
use crate::actors::fault::Panic;

#[cfg(debug_assertions)]
async fn crash(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    if let Some(refused) = refusal(&state.token, &req) {
        return refused;
    }
    match req.query_string() {
        "" | "how=stop" => deliver(&state, &name, |p| &p.restarters, Restart, "crashed"),
        "how=panic" => deliver(&state, &name, |p| &p.crashers, Panic { mid_batch: false }, "crashed"),
        "how=panic-mid-batch" => deliver(&state, &name, |p| &p.crashers, Panic { mid_batch: true }, "armed"),
        other => HttpResponse::BadRequest().json(json!({
            "error": format!("unknown query {other:?}: use how=stop, how=panic or how=panic-mid-batch")
        })),
    }
}

/// Mutating endpoints need `Authorization: Bearer <NRT_ADMIN_TOKEN>`: 403 when no token is configured
/// (they are off), 401 when the header is missing or wrong. The answer never echoes what was sent.
/// Returns the refusal to send, or None when the request may proceed.
pub fn refusal(token: &crate::config::Secret, req: &actix_web::HttpRequest) -> Option<HttpResponse> {
    if token.is_empty() {
        return Some(
            HttpResponse::Forbidden()
                .json(json!({"error": "mutating endpoints are off: set NRT_ADMIN_TOKEN"})),
        );
    }
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
        None
    } else {
        Some(
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(json!({"error": "missing or wrong bearer token"})),
        )
    }
}

/// Compares in time that depends on the lengths only, not on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// Binds the admin API; the caller runs (and stops) the returned server.
/// Takes the admin address before anything else starts: a port already in use is a startup error with
/// one clear line, not a pipeline torn down half-started.
pub fn listen(addr: &str) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("admin API: cannot listen on {addr}: {e}"))
}

pub fn serve(
    listener: std::net::TcpListener,
    state: AdminState,
) -> anyhow::Result<(actix_web::dev::Server, Vec<SocketAddr>)> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        let app = App::new();
        #[cfg(debug_assertions)]
        let app = app.route("/actors/{name}/crash", web::post().to(crash));
        app.app_data(state.clone())
            .route("/", web::get().to(status_page))
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics_text))
            .route("/actors", web::get().to(actors))
            .route("/actors/{name}/restart", web::post().to(restart))
            .route("/flush", web::post().to(flush))
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(json!({"error": "no such route"}))
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(|e| anyhow::anyhow!("admin API: cannot serve: {e}"))?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cree"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x\xff", b"x"));
    }
}
