-- migrations/sqlite/0003_paused_functions.sql in PostgreSQL types.
CREATE TABLE paused_functions (
    slug TEXT COLLATE "C" PRIMARY KEY
);
