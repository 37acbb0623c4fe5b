//! The one module that talks to S3. rusoto is archived upstream; keeping it behind `ObjectStore` means
//! swapping the client touches this file only, never the actors.

mod credentials;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rusoto_core::signature::SignedRequest;
use rusoto_core::{HttpClient, Region, RusotoError};
use rusoto_s3::{
    CreateBucketError, CreateBucketRequest, GetObjectError, GetObjectRequest, HeadBucketRequest, HeadObjectError,
    HeadObjectRequest, ListObjectsV2Request, PutObjectRequest, S3Client, S3,
};
use tokio::io::AsyncReadExt;

use crate::config::S3Config;
pub use credentials::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("s3 at {endpoint}: {message}")]
    Setup { endpoint: String, message: String },
    #[error("s3 at {endpoint}: {op} {bucket}/{key}: {message}")]
    Request {
        endpoint: String,
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
        /// True when retrying may succeed (network, throttling, 5xx); false for refusals such as 403/404.
        transient: bool,
    },
}

impl S3Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, S3Error::Request { transient: true, .. })
    }
}

/// What a conditional create found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// The key exists already (it was left as it was); its user metadata (`x-amz-meta-*`, names
    /// without the prefix) as far as a HEAD shows it.
    Exists(HashMap<String, String>),
}

/// The `<Code>` of an S3 error body (`AccessDenied`, `SignatureDoesNotMatch`…).
fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len]).filter(|c| c.len() < 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
}

/// One bucket on one S3 endpoint.
#[derive(Clone)]
pub struct ObjectStore {
    client: S3Client,
    /// The same connection, for requests rusoto's S3 API cannot express (conditional PUT).
    raw: rusoto_core::Client,
    region: Region,
    endpoint: String,
    bucket: String,
    /// `x-amz-server-side-encryption` of every write, when asked for.
    sse: Option<String>,
}

impl ObjectStore {
    pub fn new(cfg: &S3Config) -> Result<Self, S3Error> {
        let setup = |message: String| S3Error::Setup {
            endpoint: cfg.endpoint.clone(),
            message,
        };
        let tls = crate::tls::client_config_020("NRT_S3_CA_FILE", cfg.ca_file.as_deref())
            .map_err(|e| setup(e.to_string()))?;
        // rusoto's own rustls client refuses plain http; a local MinIO speaks nothing else.
        let http = || {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1()
                .build();
            // Vectored writes: otherwise hyper copies each PutObject body into its write buffer (the
            // connector's stream does not say it can write vectored), holding every body twice.
            let mut builder = hyper::Client::builder();
            builder.http1_writev(true);
            HttpClient::from_builder(builder, connector)
        };
        // One provider for both clients: a refreshing one (web identity, the chain) refreshes once.
        let creds = std::sync::Arc::new(Credentials::from_config(cfg).map_err(setup)?);
        // A custom region makes rusoto use path-style URLs (endpoint/bucket/key), which MinIO needs.
        let region = Region::Custom {
            name: cfg.region.clone(),
            endpoint: cfg.endpoint.trim_end_matches('/').to_owned(),
        };
        Ok(ObjectStore {
            client: S3Client::new_with(http(), creds.clone(), region.clone()),
            raw: rusoto_core::Client::new_with(creds, http()),
            region,
            endpoint: cfg.endpoint.clone(),
            bucket: cfg.bucket.clone(),
            sse: Some(cfg.sse.clone()).filter(|s| !s.is_empty()),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Lists one key of the bucket: proves the endpoint, its TLS, the credentials and the right to read.
    /// A missing bucket is fine (the pipeline creates it at start).
    pub async fn probe(&self) -> Result<String, S3Error> {
        let req = ListObjectsV2Request {
            bucket: self.bucket.clone(),
            max_keys: Some(1),
            ..Default::default()
        };
        match self.client.list_objects_v2(req).await {
            Ok(_) => Ok(format!("bucket {} readable", self.bucket)),
            Err(RusotoError::Service(rusoto_s3::ListObjectsV2Error::NoSuchBucket(_))) => {
                Ok(format!("bucket {} absent (created at start)", self.bucket))
            }
            Err(RusotoError::Unknown(resp)) if error_code(&resp.body) == Some("NoSuchBucket") => {
                Ok(format!("bucket {} absent (created at start)", self.bucket))
            }
            Err(e) => Err(self.err("list", "", e)),
        }
    }

    fn err<E: std::error::Error + 'static>(&self, op: &'static str, key: &str, e: RusotoError<E>) -> S3Error {
        let transient = match &e {
            RusotoError::HttpDispatch(_) => true,
            RusotoError::Unknown(resp) => resp.status.is_server_error() || resp.status.as_u16() == 429,
            _ => false,
        };
        let message = match &e {
            // The raw body of an S3 error is XML; its status and error code say enough and carry no secrets.
            RusotoError::Unknown(resp) => match error_code(&resp.body) {
                Some(code) => format!("HTTP {} {code}", resp.status),
                None => format!("HTTP {}", resp.status),
            },
            other => other.to_string(),
        };
        S3Error::Request {
            endpoint: self.endpoint.clone(),
            op,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message,
            transient,
        }
    }

    /// Creates the bucket unless it exists already (owned by us or not yet created by a racing peer).
    pub async fn ensure_bucket(&self) -> Result<(), S3Error> {
        let head = HeadBucketRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        };
        if self.client.head_bucket(head).await.is_ok() {
            return Ok(());
        }
        let req = CreateBucketRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        };
        match self.client.create_bucket(req).await {
            Ok(_) => Ok(()),
            Err(RusotoError::Service(CreateBucketError::BucketAlreadyOwnedByYou(_))) => Ok(()),
            Err(e) => Err(self.err("create-bucket", "", e)),
        }
    }

    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), S3Error> {
        let req = PutObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            content_length: Some(body.len() as i64),
            content_type: Some(content_type.to_owned()),
            body: Some(body.into()),
            server_side_encryption: self.sse.clone(),
            ..Default::default()
        };
        self.client
            .put_object(req)
            .await
            .map_err(|e| self.err("put", key, e))?;
        Ok(())
    }

    /// Creates `key` unless it exists (`If-None-Match: *`, honoured by S3 and by MinIO): of two writers
    /// of one key the first wins and the second learns what is there, instead of overwriting it.
    /// `meta` becomes the object's user metadata (`x-amz-meta-<name>`).
    pub async fn put_if_absent(
        &self,
        key: &str,
        body: impl Into<bytes::Bytes>,
        content_type: &str,
        meta: &BTreeMap<&str, String>,
    ) -> Result<PutOutcome, S3Error> {
        let mut req = SignedRequest::new("PUT", "s3", &self.region, &format!("/{}/{key}", self.bucket));
        req.add_header("Content-Type", content_type);
        req.add_header("If-None-Match", "*");
        if let Some(sse) = &self.sse {
            req.add_header("x-amz-server-side-encryption", sse);
        }
        for (name, value) in meta {
            req.add_header(format!("x-amz-meta-{name}"), value);
        }
        // Sent as a stream so the signature says UNSIGNED-PAYLOAD: a signed payload is a SHA-256 of
        // every body here and another in MinIO (~0.4 µs of CPU per event each). The body's integrity
        // in transit is TCP's (or TLS's) job; the key, headers and condition stay signed.
        let body: bytes::Bytes = body.into();
        let size = body.len();
        let once = futures::stream::once(futures::future::ready(Ok(body)));
        req.set_payload_stream(rusoto_core::ByteStream::new_with_size(once, size));
        let failed = |message: String, transient: bool| S3Error::Request {
            endpoint: self.endpoint.clone(),
            op: "put-if-absent",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message,
            transient,
        };
        let mut resp = self
            .raw
            .sign_and_dispatch(req)
            .await
            .map_err(|e| failed(format!("{e:?}"), true))?;
        let status = resp.status;
        // The body (an XML error, or nothing) is read so the connection can be reused.
        let _ = resp.buffer().await;
        match status.as_u16() {
            200..=299 => Ok(PutOutcome::Created),
            412 => Ok(PutOutcome::Exists(self.metadata(key).await?)),
            // 409: a conditional write raced another on the same key (S3); the next try sees the winner.
            409 | 429 => Err(failed(format!("HTTP {status}"), true)),
            _ => Err(failed(format!("HTTP {status}"), status.is_server_error())),
        }
    }

    /// The server-side encryption `key` was stored with (`AES256`, `aws:kms`), if any.
    pub async fn encryption(&self, key: &str) -> Result<Option<String>, S3Error> {
        Ok(self.head(key).await?.server_side_encryption)
    }

    /// The user metadata of `key` (names without `x-amz-meta-`).
    pub async fn metadata(&self, key: &str) -> Result<HashMap<String, String>, S3Error> {
        Ok(self.head(key).await?.metadata.unwrap_or_default())
    }

    /// The user metadata of `key`, or None when there is no such key.
    pub async fn metadata_if_present(&self, key: &str) -> Result<Option<HashMap<String, String>>, S3Error> {
        let req = HeadObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            ..Default::default()
        };
        match self.client.head_object(req).await {
            Ok(out) => Ok(Some(out.metadata.unwrap_or_default())),
            Err(RusotoError::Service(HeadObjectError::NoSuchKey(_))) => Ok(None),
            Err(RusotoError::Unknown(resp)) if resp.status.as_u16() == 404 => Ok(None),
            Err(e) => Err(self.err("head", key, e)),
        }
    }

    async fn head(&self, key: &str) -> Result<rusoto_s3::HeadObjectOutput, S3Error> {
        let req = HeadObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            ..Default::default()
        };
        self.client
            .head_object(req)
            .await
            .map_err(|e: RusotoError<HeadObjectError>| self.err("head", key, e))
    }

    pub async fn get(&self, key: &str, timeout: Duration) -> Result<Vec<u8>, S3Error> {
        self.get_with_meta(key, timeout).await.map(|(body, _)| body)
    }

    /// The object and its user metadata (`x-amz-meta-*`, names without the prefix).
    pub async fn get_with_meta(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<(Vec<u8>, HashMap<String, String>), S3Error> {
        match self.get_if_present(key, timeout).await? {
            Some(found) => Ok(found),
            None => Err(S3Error::Request {
                endpoint: self.endpoint.clone(),
                op: "get",
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                message: "HTTP 404 NoSuchKey".into(),
                transient: false,
            }),
        }
    }

    /// `get_with_meta`, or None when there is no such key.
    pub async fn get_if_present(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<(Vec<u8>, HashMap<String, String>)>, S3Error> {
        let req = GetObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            ..Default::default()
        };
        let out = match self.client.get_object(req).await {
            Ok(out) => out,
            Err(RusotoError::Service(GetObjectError::NoSuchKey(_))) => return Ok(None),
            Err(RusotoError::Unknown(resp)) if resp.status.as_u16() == 404 => return Ok(None),
            Err(e) => return Err(self.err("get", key, e)),
        };
        let mut buf = Vec::with_capacity(out.content_length.unwrap_or(0).max(0) as usize);
        let meta = out.metadata.unwrap_or_default();
        if let Some(body) = out.body {
            let mut reader = body.into_async_read();
            match tokio::time::timeout(timeout, reader.read_to_end(&mut buf)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.read_err(key, e.to_string())),
                Err(_) => return Err(self.read_err(key, format!("body not read within {timeout:?}"))),
            }
        }
        Ok(Some((buf, meta)))
    }

    fn read_err(&self, key: &str, message: String) -> S3Error {
        S3Error::Request {
            endpoint: self.endpoint.clone(),
            op: "get",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message,
            transient: true,
        }
    }

    /// Every key under `prefix`, following continuation tokens.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let req = ListObjectsV2Request {
                bucket: self.bucket.clone(),
                prefix: Some(prefix.to_owned()),
                continuation_token: token.take(),
                ..Default::default()
            };
            let out = self
                .client
                .list_objects_v2(req)
                .await
                .map_err(|e| self.err("list", prefix, e))?;
            keys.extend(out.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => return Ok(keys),
            }
        }
    }
}
