//! nrt-pipeline: HTTP events → Avro (Confluent wire format) → Kafka → MinIO (JSONL) + ClickHouse.
//!
//! The library holds everything; `src/main.rs` only parses the command line and starts things.
//! `actors.md` tells the data flow in one page.

pub mod actors;
pub mod admin;
pub mod clickhouse;
pub mod config;
pub mod dead_letters;
pub mod doctor;
pub mod event;
pub mod kafka;
pub mod metrics;
pub mod mock_api;
pub mod probes;
pub mod registry;
pub mod retry;
pub mod run;
pub mod s3;
pub mod wire;
