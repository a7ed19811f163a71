-- migrations/sqlite/0002_flow_control.sql in PostgreSQL types.

CREATE TABLE debounces (
    function TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    first_ms BIGINT NOT NULL,
    fire_ms BIGINT NOT NULL,
    PRIMARY KEY (function, key)
);

CREATE TABLE batches (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    function TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    event_ids TEXT[] NOT NULL,
    first_ms BIGINT NOT NULL,
    open BOOLEAN NOT NULL
);
-- One open batch per (function, key), even when two nodes append at once:
-- the second insert finds the first's row and appends to it.
CREATE UNIQUE INDEX batches_open ON batches (function, key) WHERE open;

CREATE TABLE skips (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    function TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX skips_by_function ON skips (function, id);

CREATE TABLE singletons (
    scope TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (scope, key)
);
