CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    sdk TEXT,
    framework TEXT,
    checksum TEXT,
    error TEXT,
    synced_at_ms INTEGER NOT NULL
);

CREATE TABLE functions (
    slug TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE events (
    internal_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL
);
CREATE INDEX events_by_name ON events (name, internal_id);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    output TEXT,
    started_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER,
    correlation_id TEXT,
    rev INTEGER NOT NULL
);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_function ON runs (function, id);

CREATE TABLE run_events (
    event_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (event_id, run_id)
);

CREATE TABLE steps (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    name TEXT NOT NULL,
    memo TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, step)
);

CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    name TEXT,
    attempt INTEGER,
    duration_ms INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX history_by_run ON history (run_id, id);

CREATE TABLE queue (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    work TEXT NOT NULL,
    available_at_ms INTEGER NOT NULL,
    dedupe TEXT UNIQUE
);
CREATE INDEX queue_by_due ON queue (available_at_ms, id);
CREATE INDEX queue_by_run ON queue (run_id);

CREATE TABLE pauses (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_name TEXT,
    if_exp TEXT,
    correlation_id TEXT,
    trigger TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX pauses_by_event ON pauses (event_name);
CREATE INDEX pauses_by_correlation ON pauses (correlation_id);
CREATE INDEX pauses_by_run ON pauses (run_id);

CREATE TABLE unique_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
