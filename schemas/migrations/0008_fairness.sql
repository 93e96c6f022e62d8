-- 0008_fairness.sql - the pre-queue and its verifiable draw, and per-event
-- admission caps (docs/fairness.md).
--
-- prequeue_opens_at: joins from this time until onsale_at are pre-queued;
-- at onsale_at (plus the owner's draw.close_ms) they are ordered by
-- ascending hex HMAC-SHA256(key = draw_seed, message = the intent's public
-- id) ahead of every later join. draw_seed is 32 random bytes made at the
-- event's creation; draw_commitment = hex SHA-256(draw_seed) is public from
-- then on, the seed from onsale_at. Which intents were pre-queued is not a
-- column: an intent of an event with a pre-queue whose accepted_at is
-- before onsale_at was pre-queued (the owner decides by the same rule).
ALTER TABLE events
    ADD COLUMN prequeue_opens_at timestamptz,
    ADD COLUMN draw_seed bytea CHECK (draw_seed IS NULL OR length(draw_seed) = 32),
    ADD COLUMN draw_commitment text CHECK (draw_commitment IS NULL OR draw_commitment ~ '^[0-9a-f]{64}$'),
    ADD COLUMN max_active_holds integer CHECK (max_active_holds IS NULL OR max_active_holds > 0),
    ADD COLUMN admissions_per_minute integer
        CHECK (admissions_per_minute IS NULL OR admissions_per_minute > 0),
    ADD CONSTRAINT events_prequeue_before_onsale
        CHECK (prequeue_opens_at IS NULL OR prequeue_opens_at < onsale_at);

-- The owner loads events with pre-queued intents when it takes a partition
-- (workers/store.c wk_store_load_live): the few open ones with a pre-queue.
CREATE INDEX events_prequeue_open ON events (event_id)
    WHERE prequeue_opens_at IS NOT NULL AND status IN ('scheduled', 'on_sale', 'sold_out');
