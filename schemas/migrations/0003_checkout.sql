-- 0003_checkout.sql - the checkout saga (docs/checkout.md).
--
-- Orders and tickets are written by the partition owner in its fenced batch
-- transaction, with explicit ids derived from the log:
--   order_id  = the checkout record's place, partition << 40 | offset;
--   ticket_id = order_id * 16 + i + 1 (i = 0..9, the order's i-th seat).
-- The outbox holds the payment requests the same transaction decided on
-- (charge an order, refund a late charge or a cancelled ticket). onsale-payments
-- claims rows (FOR UPDATE SKIP LOCKED, with a lease so a killed claimer's rows
-- come back), calls the gateway with idempotency_key, reports the outcome and
-- marks the row done. A row is never deleted before it is done, so a crash
-- anywhere re-publishes it; the gateway's idempotency makes that harmless.

ALTER TABLE orders ADD COLUMN event_id bigint;
ALTER TABLE orders ADD COLUMN failure_reason text
    CHECK (failure_reason IN ('not_held', 'declined', 'failed', 'expired'));
ALTER TABLE orders ADD COLUMN gateway_charge_id text;
CREATE INDEX orders_user ON orders (user_id, order_id DESC);

-- Ticket history, newest first (GET /v1/me/tickets).
CREATE INDEX tickets_owner_time ON tickets (owner_id, issued_at DESC, ticket_id DESC);
CREATE INDEX tickets_order ON tickets (order_id);
ALTER TABLE tickets ADD COLUMN price_cents bigint NOT NULL DEFAULT 0 CHECK (price_cents >= 0);
ALTER TABLE tickets ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE outbox (
    outbox_id        bigserial PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('charge', 'refund')),
    order_id         bigint NOT NULL REFERENCES orders,
    reservation_id   bigint NOT NULL,
    event_id         bigint NOT NULL,
    ticket_id        bigint,
    amount_cents     bigint NOT NULL CHECK (amount_cents >= 0),
    currency         char(3) NOT NULL,
    payment_method   text,
    charge_id        text,
    -- The gateway Idempotency-Key (without the deployment's prefix): one
    -- request per key, ever.
    idempotency_key  text NOT NULL UNIQUE,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    outcome          text,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz,
    CHECK (kind <> 'charge' OR payment_method IS NOT NULL)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, outbox_id) WHERE state = 'pending';

-- payments.gateway_ref is unique per kind: a replayed answer records nothing new.
CREATE UNIQUE INDEX payments_gateway_ref ON payments (kind, gateway_ref) WHERE gateway_ref IS NOT NULL;
