//! Where the S3 credentials come from (NRT_S3_CREDENTIALS): rusoto's providers behind one type, since
//! its clients are generic over the provider and ours is chosen at run time.

use rusoto_core::credential::{
    AutoRefreshingProvider, AwsCredentials, ChainProvider, CredentialsError, ProfileProvider,
    ProvideAwsCredentials, StaticProvider,
};
use rusoto_sts::WebIdentityProvider;

use crate::config::{S3Config, S3Credentials};

pub enum Credentials {
    Static(StaticProvider),
    Profile(ProfileProvider),
    WebIdentity(AutoRefreshingProvider<WebIdentityProvider>),
    /// The standard AWS lookup: AWS_* variables, the profile file, the container and instance roles.
    Chain(Box<AutoRefreshingProvider<ChainProvider>>),
}

impl Credentials {
    pub fn from_config(cfg: &S3Config) -> Result<Self, String> {
        let keys_set = !cfg.access_key.is_empty() || !cfg.secret_key.is_empty();
        let web_identity_env = std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some();
        let kind = match cfg.credentials {
            S3Credentials::Auto if keys_set => S3Credentials::Static,
            S3Credentials::Auto if web_identity_env => S3Credentials::WebIdentity,
            other => other,
        };
        match kind {
            S3Credentials::Static => {
                if cfg.access_key.is_empty() || cfg.secret_key.is_empty() {
                    return Err("NRT_S3_CREDENTIALS=static needs NRT_S3_ACCESS_KEY and NRT_S3_SECRET_KEY".into());
                }
                Ok(Credentials::Static(StaticProvider::new_minimal(
                    cfg.access_key.expose().to_owned(),
                    cfg.secret_key.expose().to_owned(),
                )))
            }
            S3Credentials::Profile => ProfileProvider::with_default_credentials(&cfg.profile)
                .map(Credentials::Profile)
                .map_err(|e| format!("NRT_S3_CREDENTIALS=profile: {e}")),
            S3Credentials::WebIdentity => {
                if std::env::var_os("AWS_ROLE_ARN").is_none() || !web_identity_env {
                    return Err("NRT_S3_CREDENTIALS=web-identity needs AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE".into());
                }
                AutoRefreshingProvider::new(WebIdentityProvider::from_k8s_env())
                    .map(Credentials::WebIdentity)
                    .map_err(|e| format!("NRT_S3_CREDENTIALS=web-identity: {e}"))
            }
            S3Credentials::Auto => AutoRefreshingProvider::new(ChainProvider::new())
                .map(|p| Credentials::Chain(Box::new(p)))
                .map_err(|e| format!("NRT_S3_CREDENTIALS=auto: {e}")),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Static(_) => "static",
            Credentials::Profile(_) => "profile",
            Credentials::WebIdentity(_) => "web-identity",
            Credentials::Chain(_) => "chain",
        }
    }
}

#[async_trait::async_trait]
impl ProvideAwsCredentials for Credentials {
    async fn credentials(&self) -> Result<AwsCredentials, CredentialsError> {
        match self {
            Credentials::Static(p) => p.credentials().await,
            Credentials::Profile(p) => p.credentials().await,
            Credentials::WebIdentity(p) => p.credentials().await,
            Credentials::Chain(p) => p.credentials().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg(kind: S3Credentials, key: &str) -> S3Config {
        S3Config {
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            access_key: Secret::new(key),
            secret_key: Secret::new(key),
            bucket: "b".into(),
            ca_file: None,
            credentials: kind,
            profile: "nrt-test".into(),
            sse: String::new(),
        }
    }

    #[tokio::test]
    async fn static_keys_win_in_auto_and_are_required_by_static() {
        let c = Credentials::from_config(&cfg(S3Credentials::Auto, "k")).unwrap();
        assert_eq!(c.kind(), "static");
        assert_eq!(c.credentials().await.unwrap().aws_access_key_id(), "k");
        let err = Credentials::from_config(&cfg(S3Credentials::Static, "")).err().unwrap();
        assert!(err.contains("NRT_S3_ACCESS_KEY"), "{err}");
    }

    #[tokio::test]
    async fn a_profile_is_read_from_the_shared_credentials_file() {
        let dir = std::env::temp_dir().join(format!("nrt-aws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(&file, "[default]\naws_access_key_id=A\naws_secret_access_key=B\n[nrt-test]\naws_access_key_id=PROFILEKEY\naws_secret_access_key=PROFILESECRET\n").unwrap();
        let provider = ProfileProvider::with_configuration(&file, "nrt-test");
        let c = Credentials::Profile(provider);
        let got = c.credentials().await.unwrap();
        assert_eq!((got.aws_access_key_id(), got.aws_secret_access_key()), ("PROFILEKEY", "PROFILESECRET"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn web_identity_needs_its_two_variables() {
        // The test environment sets neither AWS_ROLE_ARN nor AWS_WEB_IDENTITY_TOKEN_FILE.
        let err = Credentials::from_config(&cfg(S3Credentials::WebIdentity, "")).err().unwrap();
        assert!(err.contains("AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE"), "{err}");
    }
}
