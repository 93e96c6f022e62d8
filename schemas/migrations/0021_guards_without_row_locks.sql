-- 0021_guards_without_row_locks.sql - the key guards and the reservations'
-- intent check take no row lock a join does not need (issue 12, the join's
-- cost on the whole box; bench/NOTES.md, "sixteenth round").
--
-- 1. A BEFORE ROW UPDATE trigger makes PostgreSQL lock the old row before
--    it looks at the trigger's column list or WHEN (GetTupleForTrigger):
--    every UPDATE of seats, intents, reservations, orders and the control
--    rows wrote a heap lock record before its update record, even though
--    0014's guards never fire on the worker's writes (they name columns no
--    writer sets). Measured on the worker's seat UPDATE (400 seats a
--    statement): 2 WAL records and 156 bytes a seat with the BEFORE
--    trigger, 1 record and 102 bytes as an AFTER trigger, backend CPU 5.0-5.4
--    against 4.6 us a seat. The same guards become AFTER ROW triggers with
--    the same column lists and WHEN clauses: an UPDATE that changes a key
--    or a reference is still refused with the same foreign_key_violation
--    (raised at the end of the statement instead of before the row is
--    written; the statement is undone either way), and one that does not
--    queues nothing. events keeps its BEFORE guard: its catalog triggers
--    (0006, 0013, 0020) are BEFORE ROW triggers anyway.
--
-- 2. onsale_ref_intents (0002: every reservation names an intent, locked
--    FOR KEY SHARE until commit) locked each intent the same transaction
--    had just inserted: the owner writes a join's intent (COPY) and its
--    reservation in one batch transaction, so each reservation cost a lock
--    record on a row no other transaction can see, hence neither delete nor
--    re-key, before that transaction commits. Those rows (xmin = this
--    transaction: not a subtransaction's, which still take the lock) are
--    checked to exist and not locked; every other intent is locked as
--    before. A row this transaction updated (an intent of an earlier batch
--    whose state the same batch moved) has that xmin too: its old version is
--    locked by the update itself until commit, which a delete waits for as
--    it would for the key-share lock. Same contract, same error.

CREATE OR REPLACE TRIGGER seats_key_immutable AFTER UPDATE OF event_id, seat_no ON seats
    FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.seat_no IS DISTINCT FROM NEW.seat_no)
    EXECUTE FUNCTION onsale_key_immutable();

CREATE OR REPLACE TRIGGER intents_key_immutable AFTER UPDATE OF intent_seq ON intents
    FOR EACH ROW WHEN (OLD.intent_seq IS DISTINCT FROM NEW.intent_seq)
    EXECUTE FUNCTION onsale_key_immutable();
CREATE OR REPLACE TRIGGER intents_ref_immutable AFTER UPDATE OF event_id ON intents
    FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id)
    EXECUTE FUNCTION onsale_ref_immutable('event_id');

CREATE OR REPLACE TRIGGER reservations_ref_immutable AFTER UPDATE OF event_id, reservation_id ON reservations
    FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.reservation_id IS DISTINCT FROM NEW.reservation_id)
    EXECUTE FUNCTION onsale_ref_immutable('event_id, reservation_id');

CREATE OR REPLACE TRIGGER orders_key_immutable AFTER UPDATE OF order_id ON orders
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id)
    EXECUTE FUNCTION onsale_key_immutable();
CREATE OR REPLACE TRIGGER orders_ref_immutable AFTER UPDATE OF reservation_id ON orders
    FOR EACH ROW WHEN (OLD.reservation_id IS DISTINCT FROM NEW.reservation_id)
    EXECUTE FUNCTION onsale_ref_immutable('reservation_id');

CREATE OR REPLACE TRIGGER order_items_ref_immutable AFTER UPDATE OF order_id, event_id, seat_no ON order_items
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id
                       OR OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.seat_no IS DISTINCT FROM NEW.seat_no)
    EXECUTE FUNCTION onsale_ref_immutable('order_id, event_id, seat_no');
CREATE OR REPLACE TRIGGER tickets_ref_immutable AFTER UPDATE OF order_id, event_id, seat_no ON tickets
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id
                       OR OLD.event_id IS DISTINCT FROM NEW.event_id
                       OR OLD.seat_no IS DISTINCT FROM NEW.seat_no)
    EXECUTE FUNCTION onsale_ref_immutable('order_id, event_id, seat_no');
CREATE OR REPLACE TRIGGER outbox_ref_immutable AFTER UPDATE OF order_id ON outbox
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id)
    EXECUTE FUNCTION onsale_ref_immutable('order_id');
CREATE OR REPLACE TRIGGER payments_ref_immutable AFTER UPDATE OF order_id ON payments
    FOR EACH ROW WHEN (OLD.order_id IS DISTINCT FROM NEW.order_id)
    EXECUTE FUNCTION onsale_ref_immutable('order_id');

-- Every reservation_id of the new rows is an intent_seq; the intents this
-- transaction did not insert are locked FOR KEY SHARE until commit. Both
-- read intents by its primary key (the function's own settings, as 0014's:
-- whatever the writer's, a few hundred keys are never a hash of the table).
CREATE OR REPLACE FUNCTION onsale_ref_intents() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    missing bigint;
BEGIN
    WITH seen AS MATERIALIZED (
             SELECT i.xmin = pg_current_xact_id()::xid AND i.updated_at = now() AS mine,
                    n.reservation_id
             FROM new_rows n LEFT JOIN intents i ON i.intent_seq = n.reservation_id),
         locked AS (
             SELECT 1 FROM intents
             WHERE intent_seq IN (SELECT reservation_id FROM seen WHERE NOT mine)
             FOR KEY SHARE
         )
    -- mine is NULL for a reservation without its intent: counted, never found
    SELECT (SELECT count(*) FROM seen WHERE mine IS NOT TRUE) - (SELECT count(*) FROM locked)
    INTO missing;
    IF missing <> 0 THEN
        RAISE EXCEPTION 'insert or update on table "reservations" violates foreign key to "intents"'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
