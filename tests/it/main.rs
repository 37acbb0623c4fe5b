//! The integration tests: one test binary, a module per capability (the crate is linked once, not once
//! per file). Those behind the `integration` feature talk to the real services `scripts/stack.sh`
//! starts; `config_errors`, `docs`, `lake_parquet` and `phases` need none.
//!
//! Some modules stop shared services (`scripts/stack.sh stop kafka`, …) while their tests run, so
//! modules must not run side by side: `scripts/test.sh` runs this binary once per module, one after
//! the other, each module's own tests in parallel (as they ran when every module was a binary). One
//! module by hand: `cargo test --features integration --test it -- faults::`. `cluster` needs the
//! cluster profile (`scripts/stack.sh up --cluster`) and runs in its own phase.

#[cfg(feature = "integration")]
mod common;

mod backpressure;
mod clickhouse_smoke;
mod cluster;
mod config_errors;
mod dead_letters;
mod deployment;
mod docs;
mod evolution;
mod faults;
mod hostile_input;
mod kafka_smoke;
mod lake_parquet;
mod migrations;
mod observability;
mod phases;
mod pipeline_e2e;
mod pipeline_python_producer;
mod pipeline_restart;
mod pipeline_supervision;
mod poller_faults;
mod producer_restarts;
mod prometheus_smoke;
mod rebalance;
mod reconcile;
mod registry_api;
mod registry_client;
mod registry_confluent_client;
mod registry_refusals;
mod replay;
mod s3_smoke;
mod s3_versitygw;
mod secrets;
mod secured;
mod shutdown;
mod sink_refusals;
mod status_page;
mod takeover;
mod unknown_schemas;
mod warehouse_rows;
