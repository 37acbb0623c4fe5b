//! The registry's errors, with Confluent's error codes and HTTP statuses, so a Confluent client reacts to
//! them exactly as it would to Confluent's own server.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::CONTENT_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {version} not found.")]
    VersionNotFound { version: String },
    #[error("{}", match .0 { Some(id) => format!("Schema {id} not found"), None => "Schema not found".to_owned() })]
    SchemaNotFound(Option<u32>),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error(
        "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted { subject: String, version: u32 },
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {details:?}")]
    Incompatible { subject: String, details: Vec<String> },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    #[error("Unsupported schema type '{0}': this registry serves AVRO only")]
    UnsupportedSchemaType(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("Request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("HTTP 404 Not Found")]
    RouteNotFound,
    #[error("Error in the backend data store: {0}")]
    Store(String),
}

impl RegistryError {
    /// Confluent's numeric error code (the HTTP status for generic errors).
    pub fn error_code(&self) -> u32 {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => 40401,
            VersionNotFound { .. } => 40402,
            SchemaNotFound(_) => 40403,
            SubjectSoftDeleted(_) => 40404,
            SubjectNotSoftDeleted(_) => 40405,
            VersionSoftDeleted { .. } => 40406,
            VersionNotSoftDeleted { .. } => 40407,
            SubjectConfigNotFound(_) => 40408,
            Incompatible { .. } => 409,
            InvalidSchema(_) | UnsupportedSchemaType(_) => 42201,
            InvalidVersion(_) => 42202,
            InvalidCompatibility => 42203,
            BadRequest(_) => 400,
            PayloadTooLarge(_) => 413,
            RouteNotFound => 404,
            Store(_) => 50001,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error_code: u32,
    message: &'a str,
}

impl ResponseError for RegistryError {
    fn status_code(&self) -> StatusCode {
        match self.error_code() {
            c if (40400..40500).contains(&c) => StatusCode::NOT_FOUND,
            c if (42200..42300).contains(&c) => StatusCode::UNPROCESSABLE_ENTITY,
            c if c >= 50000 => StatusCode::INTERNAL_SERVER_ERROR,
            409 => StatusCode::CONFLICT,
            413 => StatusCode::PAYLOAD_TOO_LARGE,
            404 => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = self.to_string();
        HttpResponse::build(self.status_code())
            .content_type(CONTENT_TYPE)
            .json(ErrorBody {
                error_code: self.error_code(),
                message: &message,
            })
    }
}
