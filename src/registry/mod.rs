//! A Confluent-compatible Schema Registry (Avro): the server behind `nrt registry`, its durable store,
//! and the client the pipeline uses (with a cache).

pub mod auth;
pub mod client;
mod compat;
mod error;
mod page;
pub mod server;
mod store;
pub mod subject;

pub use client::{ClientError, RegistryClient};
pub use compat::{can_read, CompatLevel};
pub use error::RegistryError;
pub use server::{serve, RegistryArgs};
pub use store::{normalize, Store, VersionSpec};
pub use subject::SubjectStrategy;

/// The media type Confluent's registry speaks (and answers with).
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
