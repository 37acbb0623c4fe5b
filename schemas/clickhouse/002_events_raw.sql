-- Typed events, one row per event. Valid on ClickHouse 18.16 (Debian) and current releases: no
-- DateTime64 (created_at_ms carries the milliseconds), no LowCardinality.
--
-- ReplacingMergeTree on (created_at, event_id): a batch replayed after a crash inserts rows with the
-- same sorting key, which merges (and SELECT ... FINAL) collapse to one row per event.
CREATE TABLE IF NOT EXISTS analytics.events_raw
(
    event_id        UUID,
    type            String,
    user_id         Int64,
    amount          Decimal(18, 2),
    currency        String,
    created_at      DateTime,
    created_at_ms   Int64,
    ingested_at     DateTime,
    kafka_partition Int32,
    kafka_offset    Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(created_at)
ORDER BY (created_at, event_id);
