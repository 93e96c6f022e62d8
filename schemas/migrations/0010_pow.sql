-- 0010_pow.sql - per-event proof-of-work before a join (docs/fairness.md
-- "Bot friction", issue 10).
--
-- pow_difficulty: the leading zero bits SHA-256(challenge ":" nonce) must
-- have for a join of this event to be accepted; 0 = no proof-of-work. Set
-- at creation and changed live (POST /v1/events/{id}/pow). Only ingress
-- reads it (the partition owner never does): ingress writes the row and the
-- event's Redis hash ev:<id>, from which every ingress node picks it up
-- within event_cache.ttl_ms. 32 is the largest difficulty a challenge can
-- carry (ingress/pow.h ING_POW_MAX_DIFFICULTY).
ALTER TABLE events
    ADD COLUMN pow_difficulty integer NOT NULL DEFAULT 0
        CHECK (pow_difficulty >= 0 AND pow_difficulty <= 32);
