-- The schema of migrations/sqlite/0001_init.sql in PostgreSQL types.
--
-- Times are BIGINT milliseconds, as everywhere in Ingot. Ids are ULID text
-- in the "C" collation: byte order is ULID (time) order, and comparisons
-- skip the locale.
--
-- JSON (event payloads, run state, step memos, queue work) is TEXT, not
-- JSONB: the store never looks inside it in SQL, every value is written whole
-- and read back whole, and a step memo must come back byte for byte. JSONB
-- would parse on every write and re-serialise on every read (the run state is
-- rewritten on every step), and it reorders keys; TEXT is stored and sent as
-- it is. Lists of event ids are TEXT[], so batches are counted in SQL.

CREATE TABLE apps (
    id TEXT COLLATE "C" PRIMARY KEY,
    url TEXT NOT NULL,
    sdk TEXT,
    framework TEXT,
    checksum TEXT,
    error TEXT,
    synced_at_ms BIGINT NOT NULL
);

CREATE TABLE functions (
    slug TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE events (
    internal_id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    payload TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX events_by_name ON events (name, internal_id);

CREATE TABLE runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    function TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    event_ids TEXT[] NOT NULL,
    output TEXT,
    started_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT,
    correlation_id TEXT,
    rev BIGINT NOT NULL
);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_function ON runs (function, id);

CREATE TABLE run_events (
    event_id TEXT COLLATE "C" NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (event_id, run_id)
);

CREATE TABLE steps (
    run_id TEXT COLLATE "C" NOT NULL,
    step TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    memo TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, step)
);

CREATE TABLE history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    name TEXT,
    attempt BIGINT,
    duration_ms BIGINT,
    detail TEXT NOT NULL
);
CREATE INDEX history_by_run ON history (run_id, id);

-- Leases live in the row (SQLite keeps them in memory): `leased_by` is the
-- node that claimed the item, `lease_until_ms` when the lease ends on the
-- database's clock (`ingot_now_ms()`), so nodes with skewed clocks agree on
-- it. A node renews the leases it holds while it lives; an item whose lease
-- ended is claimable by any node.
CREATE TABLE queue (
    id TEXT COLLATE "C" PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    work TEXT NOT NULL,
    available_at_ms BIGINT NOT NULL,
    dedupe TEXT UNIQUE,
    leased_by TEXT,
    lease_until_ms BIGINT
);
CREATE INDEX queue_by_due ON queue (available_at_ms, id);
CREATE INDEX queue_by_run ON queue (run_id);
CREATE INDEX queue_by_lease ON queue (lease_until_ms) WHERE lease_until_ms IS NOT NULL;

-- The clock leases are measured on: one for every node.
CREATE FUNCTION ingot_now_ms() RETURNS BIGINT LANGUAGE sql STABLE
    AS $$ SELECT (extract(epoch FROM now()) * 1000)::BIGINT $$;

CREATE TABLE pauses (
    id TEXT COLLATE "C" PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_name TEXT COLLATE "C",
    if_exp TEXT,
    correlation_id TEXT COLLATE "C",
    trigger TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX pauses_by_event ON pauses (event_name);
CREATE INDEX pauses_by_correlation ON pauses (correlation_id);
CREATE INDEX pauses_by_run ON pauses (run_id);

CREATE TABLE unique_keys (
    scope TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE limiters (
    name TEXT COLLATE "C" PRIMARY KEY,
    tat_ms BIGINT NOT NULL
);
