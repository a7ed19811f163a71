-- step.waitForSignal: a signal pause holds its signal's key in correlation_id,
-- and at most one pause holds a key (Guard::ClaimSignal checks it first; the
-- index makes two commits racing for one key fail one of them).
CREATE UNIQUE INDEX pauses_by_signal ON pauses (correlation_id) WHERE kind = 'signal';
