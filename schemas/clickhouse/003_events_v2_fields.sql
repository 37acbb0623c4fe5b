-- events.v2 (schemas/events.v2.avsc) adds two optional fields: NULL for events written with v1.
-- Applied before the first insert of a consumer that knows v2, so before any v2 row arrives. No
-- `IF NOT EXISTS` here (ClickHouse 18.16 has none): the migration runner checks system.columns.
ALTER TABLE analytics.events_raw ADD COLUMN country Nullable(String);
ALTER TABLE analytics.events_raw ADD COLUMN session_id Nullable(String);
