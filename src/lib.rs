//! nrt-pipeline: HTTP events → Avro (Confluent wire format) → Kafka → MinIO (JSONL) + ClickHouse.
//!
//! The library holds everything; `src/main.rs` only parses the command line and starts things.
//! `actors.md` tells the data flow in one page.

// The Event, Avro, the wire format and ClickHouse's rows need no service client; everything else comes with `runtime`
// (default).
pub mod avro;
pub mod clickhouse;
pub mod event;
pub mod fast_avro;
pub mod poison;
pub mod wire;

/// Declares modules that exist with the `runtime` feature only.
macro_rules! runtime_modules {
    ($($module:ident),* $(,)?) => {$(
        #[cfg(feature = "runtime")]
        pub mod $module;
    )*};
}

runtime_modules!(
    actors,
    admin,
    config,
    dead_letters,
    doctor,
    internal_events,
    kafka,
    lake,
    log_summary,
    metrics,
    migrations,
    mock_api,
    probes,
    reconcile,
    record,
    registry,
    replay,
    retry,
    run,
    s3,
    table_change,
    tls,
);
