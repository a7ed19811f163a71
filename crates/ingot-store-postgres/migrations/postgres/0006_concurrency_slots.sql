-- Concurrency limits across nodes: a slot is a row naming the key and the
-- queue item (with the lease that took it) whose call holds it. A slot
-- counts only while its item is still queued under that lease, so an ack,
-- a release or a dead node's lease running out frees it without a write;
-- taking a slot first deletes the key's slots that no longer count.
CREATE TABLE concurrency_slots (
    key TEXT COLLATE "C" NOT NULL,
    item_id TEXT COLLATE "C" NOT NULL,
    leased_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (key, item_id)
);
CREATE INDEX concurrency_slots_by_item ON concurrency_slots (item_id);
