//! `nrt registry`: Confluent's Schema Registry REST API (Avro) over actix-web.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Args;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::compat::CompatLevel;
use super::error::RegistryError;
use super::store::{Store, VersionSpec};
use super::CONTENT_TYPE;
use crate::metrics::{self, RegistryMetrics};

/// Request bodies larger than this are refused (413): a schema is a few KiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, env = "NRT_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: String,
    /// Directory holding the registry's durable state.
    #[arg(long, env = "NRT_REGISTRY_DATA_DIR", default_value = "registry-data")]
    pub data_dir: PathBuf,
    /// Users allowed in (`name:read|write:argon2-hash` per line; see `nrt registry hash-password`).
    /// Without it, anyone who can reach the port may read and write.
    #[arg(long, env = "NRT_REGISTRY_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with (and NRT_REGISTRY_TLS_KEY).
    #[arg(long, env = "NRT_REGISTRY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of NRT_REGISTRY_TLS_CERT.
    #[arg(long, env = "NRT_REGISTRY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<RegistryCommand>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RegistryCommand {
    /// Reads a password on stdin, prints its hash for the users file.
    HashPassword,
}

/// `nrt registry hash-password`: one line in, one PHC string out.
pub fn hash_password_from_stdin() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "registry hash-password: no password on stdin");
    println!("{}", super::auth::hash_password(password).map_err(anyhow::Error::msg)?);
    Ok(())
}

/// The server's rustls config from a PEM chain and key.
fn server_tls(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("NRT_REGISTRY_TLS_CERT {}: {e}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "NRT_REGISTRY_TLS_CERT {}: no certificate in it", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("NRT_REGISTRY_TLS_KEY {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("registry TLS: certificate and key do not make a server identity: {e}"))
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;
type StoreData = web::Data<Store>;

/// Runs the registry until the process is told to stop.
pub async fn serve(args: &RegistryArgs) -> anyhow::Result<()> {
    let users = match &args.users_file {
        Some(path) => Some(web::Data::new(super::auth::Users::load(path).map_err(anyhow::Error::msg)?)),
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server_tls(cert, key)?),
        _ => None,
    };
    let store: StoreData = web::Data::from(Arc::new(Store::open(&args.data_dir)?));
    let metrics = web::Data::new(RegistryMetrics::new()?);
    let server = HttpServer::new(move || {
        let mut app = App::new();
        if let Some(users) = &users {
            app = app.app_data(users.clone());
        }
        app.app_data(store.clone())
            .app_data(metrics.clone())
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| RegistryError::BadRequest(e.to_string()).into()),
            )
            // Inside the counter: refused requests are counted too, by status.
            .wrap(from_fn(super::auth::require))
            .wrap(from_fn(count_requests))
            .configure(routes)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(RegistryError::RouteNotFound)
            }))
    })
    ;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(&args.listen, tls),
        None => server.bind(&args.listen),
    }
    .map_err(|e| anyhow::anyhow!("registry: cannot listen on {}: {e}", args.listen))?;
    for addr in server.addrs() {
        // Machine-readable: tests start the registry on port 0 and read the port from this line.
        println!("nrt registry listening on {scheme}://{addr}");
    }
    log::info!("registry: data in {}", args.data_dir.display());
    server.run().await?;
    Ok(())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/metrics", web::get().to(metrics_text))
        .route("/subjects", web::get().to(list_subjects))
        .route("/subjects/{subject}", web::post().to(lookup))
        .route("/subjects/{subject}", web::delete().to(delete_subject))
        .route("/subjects/{subject}/versions", web::get().to(list_versions))
        .route("/subjects/{subject}/versions", web::post().to(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            web::get().to(get_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            web::delete().to(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            web::get().to(get_version_schema),
        )
        .route("/schemas/types", web::get().to(|| async { ok(&["AVRO"]) }))
        .route("/schemas/ids/{id}", web::get().to(schema_by_id))
        .route("/schemas/ids/{id}/schema", web::get().to(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", web::get().to(subjects_by_id))
        .route("/schemas/ids/{id}/versions", web::get().to(versions_by_id))
        .route("/config", web::get().to(get_global_config))
        .route("/config", web::put().to(put_global_config))
        .route("/config/{subject}", web::get().to(get_subject_config))
        .route("/config/{subject}", web::put().to(put_subject_config))
        .route("/config/{subject}", web::delete().to(delete_subject_config))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            web::post().to(check_compatibility),
        );
}

#[derive(Deserialize)]
struct PageQuery {
    subject: Option<String>,
    version: Option<u32>,
}

/// Confluent's `{}` for clients; the page for a browser (it asks for HTML).
async fn root(store: StoreData, req: actix_web::HttpRequest, q: web::Query<PageQuery>) -> HttpResponse {
    let wants_html = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !wants_html {
        return ok(&json!({}));
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(super::page::render(&store, q.subject.as_deref(), q.version))
}

async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<RegistryMetrics>>().cloned();
    let method = req.method().as_str().to_owned();
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        m.requests
            .with_label_values(&[route.as_str(), method.as_str(), res.status().as_str()])
            .inc();
    }
    Ok(res)
}

fn ok<T: Serialize + ?Sized>(body: &T) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).json(body)
}

/// Boolean query flags. Parsed as Confluent's Java server does (`Boolean.parseBoolean`): "true" in any
/// case is true, anything else false. Confluent's Python client sends `deleted=False`, for one.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flags {
    #[serde(default, deserialize_with = "java_bool")]
    deleted: bool,
    #[serde(default, deserialize_with = "java_bool")]
    permanent: bool,
    #[serde(default, deserialize_with = "java_bool")]
    verbose: bool,
    #[serde(default, deserialize_with = "java_bool")]
    default_to_global: bool,
}

fn java_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let raw = String::deserialize(d)?;
    Ok(raw.eq_ignore_ascii_case("true"))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

impl SchemaBody {
    /// The schema text, once we know it is one we serve: Avro, without references.
    fn avro(self) -> Result<String> {
        match self.schema_type.as_deref() {
            None | Some("AVRO") => {}
            Some(other) => return Err(RegistryError::UnsupportedSchemaType(other.to_owned())),
        }
        if !self.references.is_empty() {
            return Err(RegistryError::InvalidSchema(
                "schema references are not supported".into(),
            ));
        }
        Ok(self.schema)
    }
}

#[derive(Debug, Deserialize)]
struct ConfigBody {
    compatibility: String,
}

/// Reads a JSON body of at most `MAX_BODY_BYTES`, whatever the content type says.
async fn read_json<T: serde::de::DeserializeOwned>(mut payload: web::Payload) -> Result<T> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| RegistryError::BadRequest(format!("cannot read request body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(RegistryError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| RegistryError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Runs a store change (which fsyncs) off the async worker thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    web::block(f)
        .await
        .map_err(|e| RegistryError::Store(format!("worker failed: {e}")))?
}

fn parse_id(raw: &str) -> Result<u32> {
    raw.parse()
        .map_err(|_| RegistryError::BadRequest(format!("schema id '{raw}' is not a positive integer")))
}

fn parse_level(raw: &str) -> Result<CompatLevel> {
    raw.parse().map_err(|_| RegistryError::InvalidCompatibility)
}

async fn metrics_text(m: web::Data<RegistryMetrics>) -> Result<HttpResponse> {
    let text = metrics::encode(&m.registry).map_err(|e| RegistryError::Store(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

async fn list_subjects(store: StoreData, q: web::Query<Flags>) -> HttpResponse {
    ok(&store.subjects(q.deleted))
}

async fn list_versions(
    store: StoreData,
    path: web::Path<String>,
    q: web::Query<Flags>,
) -> Result<HttpResponse> {
    Ok(ok(&store.versions(&path, q.deleted)?))
}

async fn register(store: StoreData, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse> {
    let schema = read_json::<SchemaBody>(payload).await?.avro()?;
    let subject = path.into_inner();
    let id = blocking(move || store.register(&subject, &schema)).await?;
    Ok(ok(&json!({ "id": id })))
}

async fn lookup(
    store: StoreData,
    path: web::Path<String>,
    q: web::Query<Flags>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let schema = read_json::<SchemaBody>(payload).await?.avro()?;
    Ok(ok(&store.lookup(&path, &schema, q.deleted)?))
}

async fn get_version(
    store: StoreData,
    path: web::Path<(String, String)>,
    q: web::Query<Flags>,
) -> Result<HttpResponse> {
    let (subject, version) = path.into_inner();
    Ok(ok(&store.version(
        &subject,
        VersionSpec::parse(&version)?,
        q.deleted,
    )?))
}

async fn get_version_schema(store: StoreData, path: web::Path<(String, String)>) -> Result<HttpResponse> {
    let (subject, version) = path.into_inner();
    let v = store.version(&subject, VersionSpec::parse(&version)?, false)?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(v.schema))
}

async fn delete_subject(
    store: StoreData,
    path: web::Path<String>,
    q: web::Query<Flags>,
) -> Result<HttpResponse> {
    let permanent = q.permanent;
    let subject = path.into_inner();
    Ok(ok(
        &blocking(move || store.delete_subject(&subject, permanent)).await?
    ))
}

async fn delete_version(
    store: StoreData,
    path: web::Path<(String, String)>,
    q: web::Query<Flags>,
) -> Result<HttpResponse> {
    let (subject, version) = path.into_inner();
    let spec = VersionSpec::parse(&version)?;
    let permanent = q.permanent;
    Ok(ok(&blocking(move || {
        store.delete_version(&subject, spec, permanent)
    })
    .await?))
}

async fn schema_by_id(store: StoreData, path: web::Path<String>) -> Result<HttpResponse> {
    Ok(ok(&json!({ "schema": store.schema_by_id(parse_id(&path)?)? })))
}

async fn raw_schema_by_id(store: StoreData, path: web::Path<String>) -> Result<HttpResponse> {
    let schema = store.schema_by_id(parse_id(&path)?)?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(schema))
}

async fn subjects_by_id(
    store: StoreData,
    path: web::Path<String>,
    q: web::Query<Flags>,
) -> Result<HttpResponse> {
    let mut subjects: Vec<String> = store
        .usages(parse_id(&path)?, q.deleted)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(ok(&subjects))
}

async fn versions_by_id(
    store: StoreData,
    path: web::Path<String>,
    q: web::Query<Flags>,
) -> Result<HttpResponse> {
    let usages = store.usages(parse_id(&path)?, q.deleted)?;
    let body: Vec<_> = usages
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    Ok(ok(&body))
}

async fn get_global_config(store: StoreData) -> HttpResponse {
    ok(&json!({ "compatibilityLevel": store.global_level() }))
}

async fn put_global_config(store: StoreData, payload: web::Payload) -> Result<HttpResponse> {
    let level = parse_level(&read_json::<ConfigBody>(payload).await?.compatibility)?;
    blocking(move || store.set_global_level(level)).await?;
    Ok(ok(&json!({ "compatibility": level })))
}

async fn get_subject_config(
    store: StoreData,
    path: web::Path<String>,
    q: web::Query<Flags>,
) -> Result<HttpResponse> {
    Ok(ok(
        &json!({ "compatibilityLevel": store.subject_level(&path, q.default_to_global)? }),
    ))
}

async fn put_subject_config(
    store: StoreData,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let level = parse_level(&read_json::<ConfigBody>(payload).await?.compatibility)?;
    let subject = path.into_inner();
    blocking(move || store.set_subject_level(&subject, level)).await?;
    Ok(ok(&json!({ "compatibility": level })))
}

async fn delete_subject_config(store: StoreData, path: web::Path<String>) -> Result<HttpResponse> {
    let subject = path.into_inner();
    let previous = blocking(move || store.delete_subject_level(&subject)).await?;
    Ok(ok(&json!({ "compatibilityLevel": previous })))
}

async fn check_compatibility(
    store: StoreData,
    path: web::Path<(String, String)>,
    q: web::Query<Flags>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let schema = read_json::<SchemaBody>(payload).await?.avro()?;
    let (subject, version) = path.into_inner();
    let reasons = store.check_compatibility(&subject, VersionSpec::parse(&version)?, &schema)?;
    let body = if q.verbose {
        json!({ "is_compatible": reasons.is_empty(), "messages": reasons })
    } else {
        json!({ "is_compatible": reasons.is_empty() })
    };
    Ok(ok(&body))
}
