-- migrations/sqlite/0004_retention_sessions.sql in PostgreSQL types.
--
-- Retention deletes in bounded batches: each table it purges is read
-- through an index on the column it purges by, so a pass costs what it
-- deletes and never scans a table that grows with the load.
CREATE INDEX runs_by_end ON runs (ended_at_ms) WHERE ended_at_ms IS NOT NULL;
CREATE INDEX run_events_by_run ON run_events (run_id);
CREATE INDEX events_by_received ON events (received_at_ms);
CREATE INDEX unique_keys_by_expiry ON unique_keys (expires_at_ms);
CREATE INDEX limiters_by_tat ON limiters (tat_ms);
CREATE INDEX skips_by_time ON skips (at_ms);
CREATE INDEX singletons_by_run ON singletons (run_id);
CREATE INDEX debounces_by_event ON debounces (event_id);

-- Dashboard sessions: `id` is the SHA-256 of the cookie's token.
CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at_ms);
