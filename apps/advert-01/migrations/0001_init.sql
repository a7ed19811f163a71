-- advert-01's own data: generated strategies and webhook delivery attempts.

CREATE TABLE strategies (
    id                 TEXT PRIMARY KEY,
    campaign           TEXT NOT NULL,
    goal               TEXT NOT NULL,
    currency           TEXT NOT NULL,
    total_budget_cents INTEGER NOT NULL,
    start_date         TEXT NOT NULL,
    end_date           TEXT NOT NULL,
    audience_json      TEXT NOT NULL,
    summary            TEXT NOT NULL,
    event_id           TEXT,
    run_id             TEXT NOT NULL,
    created_at         TEXT NOT NULL
);

CREATE TABLE strategy_allocations (
    strategy_id  TEXT NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    channel      TEXT NOT NULL,
    share_bps    INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    rationale    TEXT NOT NULL,
    PRIMARY KEY (strategy_id, channel)
);

CREATE TABLE strategy_phases (
    strategy_id  TEXT NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    start_date   TEXT NOT NULL,
    end_date     TEXT NOT NULL,
    budget_cents INTEGER NOT NULL,
    focus        TEXT NOT NULL,
    PRIMARY KEY (strategy_id, position)
);

CREATE TABLE strategy_kpis (
    strategy_id TEXT NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    channel     TEXT,
    metric      TEXT NOT NULL,
    target      INTEGER NOT NULL,
    unit        TEXT NOT NULL,
    rationale   TEXT NOT NULL,
    PRIMARY KEY (strategy_id, position)
);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    url          TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status_code  INTEGER,
    outcome      TEXT NOT NULL,
    error        TEXT,
    retry_after_ms INTEGER,
    duration_ms  INTEGER NOT NULL,
    attempted_at TEXT NOT NULL
);

CREATE INDEX webhook_attempts_by_url ON webhook_attempts (url, id);
CREATE INDEX webhook_attempts_by_message ON webhook_attempts (message_id, id);
