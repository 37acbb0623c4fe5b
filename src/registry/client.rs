//! The registry client the pipeline uses: register a schema, fetch a writer schema by id, fetch a
//! subject's latest version. Ids are immutable, so schemas by id are cached forever: once known, a
//! schema keeps decoding while the registry is down.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;
use serde_json::json;

use super::CONTENT_TYPE;
use crate::config::RegistryConfig;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("schema registry at {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("schema registry at {url}: HTTP {status}, error {error_code}: {message}")]
    Api {
        url: String,
        status: u16,
        error_code: u32,
        message: String,
    },
    #[error("schema registry URL '{0}' is not an http(s) base URL")]
    BadUrl(String),
    #[error("schema registry: {0}")]
    Setup(String),
    #[error("schema registry at {url}: schema {id} does not parse: {message}")]
    BadSchema { url: String, id: u32, message: String },
}

impl ClientError {
    /// Worth retrying: the registry is unreachable, timed out, or failed on its side.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Http { .. } => true,
            ClientError::Api { status, .. } => *status >= 500 || *status == 429,
            ClientError::BadSchema { .. } | ClientError::BadUrl(_) | ClientError::Setup(_) => false,
        }
    }

    /// The Confluent error code, when the registry answered with one.
    pub fn error_code(&self) -> Option<u32> {
        match self {
            ClientError::Api { error_code, .. } => Some(*error_code),
            _ => None,
        }
    }
}

/// A subject's version as the registry returns it, with the schema parsed.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: u32,
    pub version: u32,
    pub schema: Arc<Schema>,
}

pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    base_url: reqwest::Url,
    by_id: RwLock<HashMap<u32, Arc<Schema>>>,
    registered: RwLock<HashMap<(String, String), u32>>,
    /// Counts of schema-by-id lookups served from the cache (hit) or the registry (miss).
    cache_metrics: Option<prometheus::IntCounterVec>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: u32,
    message: String,
}

impl RegistryClient {
    pub fn new(cfg: &RegistryConfig, timeout: Duration) -> Result<Self, ClientError> {
        let tls = crate::tls::client_config("NRT_SCHEMA_REGISTRY_CA_FILE", cfg.ca_file.as_deref())
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some((user, password)) = cfg.credentials().map_err(|e| ClientError::Setup(e.to_string()))? {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()));
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|_| ClientError::Setup("NRT_SCHEMA_REGISTRY_BASIC_AUTH: not a valid header value".into()))?;
            // Kept out of reqwest's Debug output.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .use_preconfigured_tls(tls)
            .default_headers(headers)
            .build()
            .map_err(|source| ClientError::Http {
                url: cfg.url.clone(),
                source,
            })?;
        let base_url = reqwest::Url::parse(&cfg.url)
            .ok()
            .filter(|u| !u.cannot_be_a_base() && u.scheme().starts_with("http"))
            .ok_or_else(|| ClientError::BadUrl(cfg.url.clone()))?;
        Ok(RegistryClient {
            http,
            base: cfg.url.trim_end_matches('/').to_owned(),
            base_url,
            by_id: RwLock::default(),
            registered: RwLock::default(),
            cache_metrics: None,
        })
    }

    /// Counts cache hits and misses of `schema_by_id` in `counter{result="hit"|"miss"}`.
    pub fn with_cache_metrics(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.cache_metrics = Some(counter);
        self
    }

    fn count(&self, result: &str) {
        if let Some(c) = &self.cache_metrics {
            c.with_label_values(&[result]).inc();
        }
    }

    /// The base URL with `segments` appended, each percent-encoded (a subject may hold any character).
    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let http_err = |source| ClientError::Http {
            url: self.base.clone(),
            source,
        };
        let resp = req
            .header("Accept", CONTENT_TYPE)
            .send()
            .await
            .map_err(http_err)?;
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(http_err);
        }
        let text = resp.text().await.unwrap_or_default();
        let (error_code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.error_code, b.message),
            Err(_) => (status.as_u16().into(), text.chars().take(200).collect()),
        };
        Err(ClientError::Api {
            url: self.base.clone(),
            status: status.as_u16(),
            error_code,
            message,
        })
    }

    /// Every subject's name (the cheapest request that proves the registry answers and lets us in).
    pub async fn subjects(&self) -> Result<Vec<String>, ClientError> {
        self.call(self.http.get(self.url(&["subjects"]))).await
    }

    /// Registers `schema` under `subject` (or finds it registered already) and returns its global id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, ClientError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = read(&self.registered).get(&key) {
            return Ok(*id);
        }
        #[derive(Deserialize)]
        struct Id {
            id: u32,
        }
        let url = self.url(&["subjects", subject, "versions"]);
        let req = self
            .http
            .post(url)
            .header("Content-Type", CONTENT_TYPE)
            .json(&json!({ "schema": schema }));
        let Id { id } = self.call(req).await?;
        write(&self.registered).insert(key, id);
        Ok(id)
    }

    /// The writer schema with global id `id`; cached forever once fetched.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, ClientError> {
        if let Some(s) = read(&self.by_id).get(&id) {
            self.count("hit");
            return Ok(s.clone());
        }
        self.count("miss");
        #[derive(Deserialize)]
        struct Body {
            schema: String,
        }
        let url = self.url(&["schemas", "ids", &id.to_string()]);
        let Body { schema } = self.call(self.http.get(url)).await?;
        let parsed = Arc::new(self.parse(id, &schema)?);
        write(&self.by_id).insert(id, parsed.clone());
        Ok(parsed)
    }

    /// The latest live version of `subject` (not cached: it changes when a new version registers).
    pub async fn latest(&self, subject: &str) -> Result<Registered, ClientError> {
        #[derive(Deserialize)]
        struct Body {
            id: u32,
            version: u32,
            schema: String,
        }
        let url = self.url(&["subjects", subject, "versions", "latest"]);
        let body: Body = self.call(self.http.get(url)).await?;
        let schema = Arc::new(self.parse(body.id, &body.schema)?);
        write(&self.by_id)
            .entry(body.id)
            .or_insert_with(|| schema.clone());
        Ok(Registered {
            id: body.id,
            version: body.version,
            schema,
        })
    }

    fn parse(&self, id: u32, text: &str) -> Result<Schema, ClientError> {
        Schema::parse_str(text).map_err(|e| ClientError::BadSchema {
            url: self.base.clone(),
            id,
            message: e.to_string(),
        })
    }
}

// A panic elsewhere cannot corrupt a cache of immutable values, so a poisoned lock is still usable.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
