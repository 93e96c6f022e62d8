-- 0001_init.sql - the seed data model.
--
-- The invariants live here as constraints, not only in the worker's memory:
--   * one holder per seat: a seat row names at most one reservation, and a
--     valid ticket exists at most once per seat;
--   * at most one active intent per (event, user);
--   * intent ids are unique: an intent is identified by its place in the log,
--     intent_seq = partition << 40 | offset;
--   * money is integer cents with an ISO currency; every status is checked.
-- Applied by scripts/stack (recorded in schema_migrations), each file in one
-- transaction.

CREATE TABLE users (
    user_id     bigint PRIMARY KEY CHECK (user_id > 0),
    role        text NOT NULL DEFAULT 'fan' CHECK (role IN ('fan', 'seller', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE venues (
    venue_id    bigserial PRIMARY KEY,
    owner_id    bigint NOT NULL CHECK (owner_id > 0),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city        text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    country     text NOT NULL CHECK (length(country) BETWEEN 2 AND 100),
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    capacity    integer NOT NULL CHECK (capacity > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- position orders sections from best (0) to worst; allocation prefers lower.
CREATE TABLE sections (
    section_id    bigserial PRIMARY KEY,
    venue_id      bigint NOT NULL REFERENCES venues,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    position      integer NOT NULL CHECK (position >= 0),
    rows          integer NOT NULL CHECK (rows BETWEEN 1 AND 1000),
    seats_per_row integer NOT NULL CHECK (seats_per_row BETWEEN 1 AND 1000),
    UNIQUE (venue_id, name),
    UNIQUE (venue_id, position)
);

CREATE TABLE events (
    event_id      bigserial PRIMARY KEY,
    venue_id      bigint NOT NULL REFERENCES venues,
    seller_id     bigint NOT NULL CHECK (seller_id > 0),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    category      text NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
    starts_at     timestamptz NOT NULL,
    onsale_at     timestamptz NOT NULL DEFAULT now(),
    max_per_user  integer NOT NULL DEFAULT 8 CHECK (max_per_user BETWEEN 1 AND 10),
    hold_seconds  integer NOT NULL DEFAULT 900 CHECK (hold_seconds BETWEEN 60 AND 3600),
    currency      char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    status        text NOT NULL DEFAULT 'on_sale'
                  CHECK (status IN ('scheduled', 'on_sale', 'paused', 'sold_out', 'cancelled', 'ended')),
    seats_total   integer NOT NULL DEFAULT 0 CHECK (seats_total >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_starts_at ON events (starts_at);

CREATE TABLE price_tiers (
    event_id     bigint NOT NULL REFERENCES events,
    section_id   bigint NOT NULL REFERENCES sections,
    price_cents  bigint NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (event_id, section_id)
);

-- One row per sellable seat of an event. seat_no numbers the event's seats
-- 0..seats_total-1 in allocation order (section position, row, seat).
-- A seat is held by at most one reservation: the column can name only one,
-- and it is set exactly when the seat is not available.
CREATE TABLE seats (
    event_id        bigint NOT NULL REFERENCES events,
    seat_no         integer NOT NULL CHECK (seat_no >= 0),
    section_id      bigint NOT NULL REFERENCES sections,
    row_no          integer NOT NULL CHECK (row_no >= 1),
    seat_in_row     integer NOT NULL CHECK (seat_in_row >= 1),
    price_cents     bigint NOT NULL CHECK (price_cents >= 0),
    status          text NOT NULL DEFAULT 'available'
                    CHECK (status IN ('available', 'held', 'paying', 'sold')),
    reservation_id  bigint,
    PRIMARY KEY (event_id, seat_no),
    UNIQUE (event_id, section_id, row_no, seat_in_row),
    CHECK ((status = 'available') = (reservation_id IS NULL))
);

-- A processed intent. intent_seq = partition << 40 | kafka_offset.
CREATE TABLE intents (
    intent_seq       bigint PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES events,
    user_id          bigint NOT NULL CHECK (user_id > 0),
    partition        integer NOT NULL CHECK (partition >= 0),
    kafka_offset     bigint NOT NULL CHECK (kafka_offset >= 0),
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 10),
    section          text,
    max_price_cents  bigint CHECK (max_price_cents > 0),
    adjacent         boolean NOT NULL DEFAULT true,
    state            text NOT NULL
                     CHECK (state IN ('queued', 'waiting', 'reserved', 'paying', 'purchased',
                                      'rejected', 'expired', 'released')),
    reason           text CHECK (reason IN ('sold_out', 'insufficient_seats', 'duplicate',
                                            'sale_closed', 'cancelled')),
    reservation_id   bigint,
    accepted_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partition, kafka_offset),
    CHECK (intent_seq = (partition::bigint << 40) | kafka_offset),
    CHECK (state <> 'rejected' OR reason IS NOT NULL)
);
-- At most one active intent per (event, user).
CREATE UNIQUE INDEX intents_one_active ON intents (event_id, user_id)
    WHERE state IN ('queued', 'waiting', 'reserved', 'paying');
CREATE INDEX intents_user ON intents (user_id, event_id);

-- A hold on seats for one intent; reservation_id = the intent's intent_seq.
CREATE TABLE reservations (
    reservation_id  bigint PRIMARY KEY REFERENCES intents (intent_seq),
    event_id        bigint NOT NULL REFERENCES events,
    user_id         bigint NOT NULL CHECK (user_id > 0),
    state           text NOT NULL
                    CHECK (state IN ('held', 'paying', 'purchased', 'expired', 'released')),
    seat_count      integer NOT NULL CHECK (seat_count BETWEEN 1 AND 10),
    total_cents     bigint NOT NULL CHECK (total_cents >= 0),
    currency        char(3) NOT NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reservations_live ON reservations (event_id) WHERE state IN ('held', 'paying');

CREATE TABLE orders (
    order_id        bigserial PRIMARY KEY,
    reservation_id  bigint NOT NULL REFERENCES reservations,
    user_id         bigint NOT NULL CHECK (user_id > 0),
    state           text NOT NULL CHECK (state IN ('pending', 'paid', 'failed', 'refunded')),
    total_cents     bigint NOT NULL CHECK (total_cents >= 0),
    currency        char(3) NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);
-- At most one order per reservation that is not failed.
CREATE UNIQUE INDEX orders_one_live ON orders (reservation_id) WHERE state <> 'failed';

CREATE TABLE order_items (
    order_id     bigint NOT NULL REFERENCES orders,
    event_id     bigint NOT NULL,
    seat_no      integer NOT NULL,
    price_cents  bigint NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (order_id, event_id, seat_no),
    FOREIGN KEY (event_id, seat_no) REFERENCES seats (event_id, seat_no)
);

CREATE TABLE payments (
    payment_id      bigserial PRIMARY KEY,
    order_id        bigint NOT NULL REFERENCES orders,
    kind            text NOT NULL CHECK (kind IN ('charge', 'refund')),
    state           text NOT NULL CHECK (state IN ('pending', 'succeeded', 'declined', 'failed')),
    amount_cents    bigint NOT NULL CHECK (amount_cents >= 0),
    currency        char(3) NOT NULL,
    gateway_ref     text,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Never charge twice: one successful charge per order.
CREATE UNIQUE INDEX payments_one_charge ON payments (order_id)
    WHERE kind = 'charge' AND state = 'succeeded';

CREATE TABLE tickets (
    ticket_id   bigserial PRIMARY KEY,
    event_id    bigint NOT NULL,
    seat_no     integer NOT NULL,
    order_id    bigint NOT NULL REFERENCES orders,
    owner_id    bigint NOT NULL CHECK (owner_id > 0),
    status      text NOT NULL CHECK (status IN ('valid', 'cancelled')),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (event_id, seat_no) REFERENCES seats (event_id, seat_no)
);
CREATE UNIQUE INDEX tickets_one_valid ON tickets (event_id, seat_no) WHERE status = 'valid';
CREATE INDEX tickets_owner ON tickets (owner_id, ticket_id DESC);

-- Fencing for single-writer workers: a worker that claims a partition bumps
-- epoch; every batch commit checks it still holds the epoch it claimed.
-- next_offset is the first log offset whose effects are not yet applied.
CREATE TABLE partition_owner (
    partition    integer PRIMARY KEY CHECK (partition >= 0),
    epoch        bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    next_offset  bigint NOT NULL DEFAULT 0 CHECK (next_offset >= 0),
    owner        text,
    claimed_at   timestamptz
);
