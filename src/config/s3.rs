//! S3-compatible object storage: endpoint, bucket, credentials, encryption.

use clap::Args;

use super::Secret;

/// S3-compatible object storage (MinIO).
#[derive(Debug, Clone, Args)]
pub struct S3Config {
    /// Endpoint URL (`https://s3.eu-west-1.amazonaws.com` for AWS). Requests are path-style
    /// (`endpoint/bucket/key`): rusoto's only addressing, which MinIO, AWS and the others accept.
    #[arg(
        id = "s3-endpoint",
        long = "s3-endpoint",
        env = "NRT_S3_ENDPOINT",
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoint: String,
    /// Region name sent in request signatures.
    #[arg(
        id = "s3-region",
        long = "s3-region",
        env = "NRT_S3_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,
    /// Access key id. Prefer the environment: flags show up in `ps`.
    #[arg(
        id = "s3-access-key",
        long = "s3-access-key",
        env = "NRT_S3_ACCESS_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub access_key: Secret,
    /// Secret access key. Prefer the environment: flags show up in `ps`.
    #[arg(
        id = "s3-secret-key",
        long = "s3-secret-key",
        env = "NRT_S3_SECRET_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    pub secret_key: Secret,
    /// Bucket that receives the raw JSONL objects.
    #[arg(
        id = "s3-bucket",
        long = "s3-bucket",
        env = "NRT_S3_BUCKET",
        default_value = "raw-events"
    )]
    pub bucket: String,
    /// PEM bundle of the CA(s) that signed the endpoint's certificate, beside the system's.
    #[arg(id = "s3-ca-file", long = "s3-ca-file", env = "NRT_S3_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Where credentials come from: `static` (NRT_S3_ACCESS_KEY/SECRET_KEY), `profile` (the AWS
    /// shared credentials file, profile NRT_S3_PROFILE), `web-identity` (AWS_ROLE_ARN +
    /// AWS_WEB_IDENTITY_TOKEN_FILE, as on EKS), `auto`: static when the keys are set, else the others.
    #[arg(
        id = "s3-credentials",
        long = "s3-credentials",
        env = "NRT_S3_CREDENTIALS",
        value_enum,
        default_value_t = S3Credentials::Auto
    )]
    pub credentials: S3Credentials,
    /// Profile of the AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials).
    #[arg(id = "s3-profile", long = "s3-profile", env = "NRT_S3_PROFILE", default_value = "default")]
    pub profile: String,
    /// Server-side encryption of every object written: `AES256` (SSE-S3) or `aws:kms` (with the
    /// bucket's or the server's default key). Empty: none requested.
    #[arg(
        id = "s3-sse",
        long = "s3-sse",
        env = "NRT_S3_SSE",
        default_value = ""
    )]
    pub sse: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum S3Credentials {
    Auto,
    Static,
    Profile,
    WebIdentity,
}
