-- migrations/sqlite/0005_signals.sql: at most one signal pause per signal key.
CREATE UNIQUE INDEX pauses_by_signal ON pauses (correlation_id) WHERE kind = 'signal';
