-- 0007_ticket_codes.sql - gate codes and admission of tickets, and the
-- freeze of an event's prices (docs/tickets.md, docs/api.md PATCH
-- /v1/events/{id}).
--
--   * A ticket's rotating code is HMAC-derived from ingress's tickets.secret,
--     the ticket id and code_version: no secret is stored. The partition
--     owner bumps code_version once per transfer in its batch transaction, so
--     a code shown before a transfer no longer verifies (and a replayed batch
--     bumps it the same way: the bump is part of the fenced commit).
--   * admitted_at is set once, by the scan that admits the ticket (UPDATE ...
--     WHERE admitted_at IS NULL): two scanners cannot both admit it.
--   * events.owner_loaded_at is set by the partition owner the first time it
--     loads the event into memory (its prices and starts_at are then held
--     there); ingress changes prices and starts_at only while it is NULL and
--     the sale has not opened, under the same row lock.

ALTER TABLE tickets ADD COLUMN code_version integer NOT NULL DEFAULT 0 CHECK (code_version >= 0);
ALTER TABLE tickets ADD COLUMN admitted_at timestamptz;
ALTER TABLE tickets ADD COLUMN admitted_by bigint CHECK (admitted_by > 0);
ALTER TABLE tickets ADD CONSTRAINT tickets_admitted_by_scanner
    CHECK ((admitted_at IS NULL) = (admitted_by IS NULL));

ALTER TABLE events ADD COLUMN owner_loaded_at timestamptz;
