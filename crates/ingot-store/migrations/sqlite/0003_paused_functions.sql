CREATE TABLE paused_functions (
    slug TEXT PRIMARY KEY
);
