CREATE TABLE limiters (
    name TEXT PRIMARY KEY,
    tat_ms INTEGER NOT NULL
);

CREATE TABLE debounces (
    function TEXT NOT NULL,
    key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    fire_ms INTEGER NOT NULL,
    PRIMARY KEY (function, key)
);

CREATE TABLE batches (
    run_id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    key TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    open INTEGER NOT NULL
);
CREATE INDEX batches_open ON batches (function, key, open);

CREATE TABLE skips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL,
    event_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX skips_by_function ON skips (function, id);

CREATE TABLE singletons (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
