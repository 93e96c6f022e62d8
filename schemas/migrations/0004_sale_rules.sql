-- 0004_sale_rules.sql - money and sale rules (issue 14, docs/checkout.md
-- "Cancelled and ended events").
--
--   * A ticket of a cancelled event is `voided` (the fan did not cancel it:
--     the seller did, and the whole order is refunded once), next to `valid`
--     and `cancelled` (cancelled by its owner, its price refunded).
--   * An order whose hold was still paying when its event was cancelled, or
--     ended, fails with reason `cancelled` / `ended`; a charge that succeeds
--     after that is refunded, as for a hold that expired.
--   * events.status is written by the event's partition owner only, in its
--     fenced batch transaction (ingress produces an event_status record).

ALTER TABLE tickets DROP CONSTRAINT tickets_status_check;
ALTER TABLE tickets ADD CONSTRAINT tickets_status_check
    CHECK (status IN ('valid', 'cancelled', 'voided'));

ALTER TABLE orders DROP CONSTRAINT orders_failure_reason_check;
ALTER TABLE orders ADD CONSTRAINT orders_failure_reason_check
    CHECK (failure_reason IN ('not_held', 'declined', 'failed', 'expired', 'cancelled', 'ended'));
