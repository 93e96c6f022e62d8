-- 0014_control_fk.sql - the control lane's foreign keys checked once per
-- statement, as 0002/0012 did for the intents lane (issue 12, the sale's
-- money path; bench/NOTES.md "The control lane's foreign keys").
--
-- The partition owner writes a batch of checkouts (orders, their
-- order_items and outbox rows) and payment results (tickets) with one
-- statement per table. A row-level foreign key runs one trigger and one
-- SPI query per row: on a batch of 1,000 orders (2,500 seats) the six
-- below cost 146 ms of the backend's ~310 ms (bench/control_cost.py).
-- They become set-based, same contract as a foreign key:
--
--   * referencing side: after each INSERT statement every distinct key of
--     the new rows exists, and its row is locked FOR KEY SHARE until
--     commit (so it cannot be deleted, nor its key changed, meanwhile),
--     else foreign_key_violation. The references never change afterwards
--     (no writer changes them): an UPDATE that would is refused by a
--     row trigger whose WHEN runs without a function call otherwise.
--   * referenced side (orders, seats, reservations): keys never change,
--     and a DELETE of a referenced row is refused.
--
-- Also the UPDATE triggers 0002 put on intents and reservations (a
-- statement-level event/intent check after every state update, 5 us a
-- reservation row) become the same kind of row trigger: those columns are
-- never changed by an UPDATE either.
--
-- payments.order_id likewise: onsale-payments now finishes a claimed
-- batch (its payments rows, its outbox rows done) in one statement.
--
-- The outbox is filled to half a page: the relay's claim (lease_until,
-- attempts) is then a HOT update, which adds no entry to outbox_due. A
-- claim that added entries to the very index pages it had just scanned
-- kept its scans from marking the finished rows' entries dead, so every
-- claim walked every row finished so far (bench/NOTES.md).
ALTER TABLE outbox SET (fillfactor = 50);

ALTER TABLE order_items DROP CONSTRAINT order_items_order_id_fkey;
ALTER TABLE order_items DROP CONSTRAINT order_items_event_id_seat_no_fkey;
ALTER TABLE tickets DROP CONSTRAINT tickets_order_id_fkey;
ALTER TABLE tickets DROP CONSTRAINT tickets_event_id_seat_no_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_order_id_fkey;
ALTER TABLE orders DROP CONSTRAINT orders_reservation_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_order_id_fkey;

-- ---- referencing side: one check per statement ----------------------------
--
-- Each looks its keys up by the referenced table's primary key (the
-- function's own settings: whatever the writer's, a few hundred keys are
-- never a hash over the whole table).

-- Every order_id of the new rows is an order.
CREATE FUNCTION onsale_ref_orders() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    missing bigint;
BEGIN
    WITH wanted AS MATERIALIZED (SELECT DISTINCT order_id FROM new_rows),
         found AS (
             SELECT 1 FROM orders
             WHERE order_id IN (SELECT order_id FROM wanted)
             FOR KEY SHARE
         )
    SELECT (SELECT count(*) FROM wanted) - (SELECT count(*) FROM found) INTO missing;
    IF missing <> 0 THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key to "orders"', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

-- Every (event_id, seat_no) of the new rows is a seat.
CREATE FUNCTION onsale_ref_seats() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    missing bigint;
BEGIN
    WITH wanted AS MATERIALIZED (SELECT DISTINCT event_id, seat_no FROM new_rows),
         found AS (
             SELECT 1 FROM seats
             WHERE (event_id, seat_no) IN (SELECT event_id, seat_no FROM wanted)
             FOR KEY SHARE
         )
    SELECT (SELECT count(*) FROM wanted) - (SELECT count(*) FROM found) INTO missing;
    IF missing <> 0 THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key to "seats"', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

-- Every reservation_id of the new orders is a reservation.
CREATE FUNCTION onsale_ref_reservations() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    missing bigint;
BEGIN
    WITH wanted AS MATERIALIZED (SELECT DISTINCT reservation_id FROM new_rows),
         found AS (
             SELECT 1 FROM reservations
             WHERE reservation_id IN (SELECT reservation_id FROM wanted)
             FOR KEY SHARE
         )
    SELECT (SELECT count(*) FROM wanted) - (SELECT count(*) FROM found) INTO missing;
    IF missing <> 0 THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key to "reservations"', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER order_items_order_ref_ins AFTER INSERT ON order_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_orders();
CREATE TRIGGER order_items_seat_ref_ins AFTER INSERT ON order_items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_seats();
CREATE TRIGGER tickets_order_ref_ins AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_orders();
CREATE TRIGGER tickets_seat_ref_ins AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_seats();
CREATE TRIGGER outbox_order_ref_ins AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_orders();
CREATE TRIGGER payments_order_ref_ins AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_orders();
CREATE TRIGGER orders_reservation_ref_ins AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_reservations();

-- ---- referencing side: a reference never changes ------------------------------

CREATE FUNCTION onsale_ref_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a reference of table "%" cannot change (%)', TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'foreign_key_violation';
END $$;

CREATE TRIGGER order_items_ref_immutable BEFORE UPDATE OF order_id, event_id, seat_no ON order_items
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id
                       OR OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.seat_no IS DISTINCT FROM NEW.seat_no)
    EXECUTE FUNCTION onsale_ref_immutable('order_id, event_id, seat_no');
CREATE TRIGGER tickets_ref_immutable BEFORE UPDATE OF order_id, event_id, seat_no ON tickets
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id
                       OR OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.seat_no IS DISTINCT FROM NEW.seat_no)
    EXECUTE FUNCTION onsale_ref_immutable('order_id, event_id, seat_no');
CREATE TRIGGER outbox_ref_immutable BEFORE UPDATE OF order_id ON outbox
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id)
    EXECUTE FUNCTION onsale_ref_immutable('order_id');
CREATE TRIGGER payments_ref_immutable BEFORE UPDATE OF order_id ON payments
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id)
    EXECUTE FUNCTION onsale_ref_immutable('order_id');
CREATE TRIGGER orders_ref_immutable BEFORE UPDATE OF reservation_id ON orders
    FOR EACH ROW WHEN (OLD.reservation_id IS DISTINCT FROM NEW.reservation_id)
    EXECUTE FUNCTION onsale_ref_immutable('reservation_id');

-- 0002's checks after every UPDATE of intents and reservations, likewise.
DROP TRIGGER intents_event_ref_upd ON intents;
DROP TRIGGER reservations_event_ref_upd ON reservations;
DROP TRIGGER reservations_intent_ref_upd ON reservations;
CREATE TRIGGER intents_ref_immutable BEFORE UPDATE OF event_id ON intents
    FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id)
    EXECUTE FUNCTION onsale_ref_immutable('event_id');
CREATE TRIGGER reservations_ref_immutable BEFORE UPDATE OF event_id, reservation_id ON reservations
    FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.reservation_id IS DISTINCT FROM NEW.reservation_id)
    EXECUTE FUNCTION onsale_ref_immutable('event_id, reservation_id');

-- ---- referenced side: keys never change, referenced rows are not deleted -------

CREATE TRIGGER orders_key_immutable BEFORE UPDATE OF order_id ON orders
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id)
    EXECUTE FUNCTION onsale_key_immutable();
CREATE TRIGGER seats_key_immutable BEFORE UPDATE OF event_id, seat_no ON seats
    FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.seat_no IS DISTINCT FROM NEW.seat_no)
    EXECUTE FUNCTION onsale_key_immutable();
-- reservations' key is its intent's (reservations_ref_immutable above).

CREATE FUNCTION onsale_orders_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM order_items x JOIN old_rows o USING (order_id))
       OR EXISTS (SELECT 1 FROM tickets x JOIN old_rows o USING (order_id))
       OR EXISTS (SELECT 1 FROM outbox x JOIN old_rows o USING (order_id))
       OR EXISTS (SELECT 1 FROM payments x JOIN old_rows o USING (order_id)) THEN
        RAISE EXCEPTION 'delete on table "orders" violates foreign key from "order_items"/"tickets"/"outbox"/"payments"'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION onsale_seats_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM order_items x JOIN old_rows o USING (event_id, seat_no))
       OR EXISTS (SELECT 1 FROM tickets x JOIN old_rows o USING (event_id, seat_no)) THEN
        RAISE EXCEPTION 'delete on table "seats" violates foreign key from "order_items"/"tickets"'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION onsale_reservations_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM orders x JOIN old_rows o USING (reservation_id)) THEN
        RAISE EXCEPTION 'delete on table "reservations" violates foreign key from "orders"'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_deleted AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_orders_deleted();
CREATE TRIGGER seats_deleted AFTER DELETE ON seats
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_seats_deleted();
CREATE TRIGGER reservations_deleted AFTER DELETE ON reservations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_reservations_deleted();
