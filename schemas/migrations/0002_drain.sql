-- 0002_drain.sql - what the worker's batch transaction costs per row
-- (issue 3: drain >= 30,000 intents/s per worker; bench/NOTES.md has the
-- measurements). Every invariant of 0001 stays enforced by the database:
--
--   * seats: fillfactor 50, so a status change (available -> held -> sold)
--     fits on its page and is a HOT update: no new entries in the two seat
--     indexes. Measured: 5,000-seat UPDATE 151 ms -> 73 ms.
--   * intents (partition, kafka_offset) UNIQUE is implied by the primary key
--     once offsets are < 2^40: intent_seq = partition << 40 | kafka_offset is
--     then a one-to-one function of the pair. The index is replaced by that
--     CHECK.
--   * intents_user (user_id, event_id) is read by nothing (results are read
--     by intent_seq; active intents by intents_one_active): dropped.
--   * Foreign keys the worker's batch writes hit row by row (intents.event_id,
--     reservations.event_id, reservations.reservation_id) cost one trigger
--     call and one SPI query per row: 21 us of the 31 us a reservation row
--     costs. They become set-based: one statement-level trigger per writing
--     statement checks (and key-share locks, as a foreign key does) every
--     distinct referenced key at once. The referenced side keeps its guard:
--     a key cannot change, and a referenced row cannot be deleted.

ALTER TABLE seats SET (fillfactor = 50);

ALTER TABLE intents ADD CONSTRAINT intents_offset_40_bits CHECK (kafka_offset < (1::bigint << 40));
ALTER TABLE intents DROP CONSTRAINT intents_partition_kafka_offset_key;
DROP INDEX intents_user;

ALTER TABLE intents DROP CONSTRAINT intents_event_id_fkey;
ALTER TABLE reservations DROP CONSTRAINT reservations_event_id_fkey;
ALTER TABLE reservations DROP CONSTRAINT reservations_reservation_id_fkey;

-- Referencing side: every event_id of the new rows exists (locked FOR KEY
-- SHARE until commit, so it cannot be deleted concurrently).
CREATE FUNCTION onsale_ref_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
BEGIN
    SELECT count(DISTINCT event_id) INTO wanted FROM new_rows;
    WITH l AS (
        SELECT 1 FROM events
        WHERE event_id IN (SELECT event_id FROM new_rows)
        FOR KEY SHARE
    )
    SELECT count(*) INTO found FROM l;
    IF found <> wanted THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key to "events"', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

-- Referencing side: every reservation_id of the new rows is an intent_seq.
CREATE FUNCTION onsale_ref_intents() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    found bigint;
BEGIN
    SELECT count(*) INTO wanted FROM new_rows;
    WITH l AS (
        SELECT 1 FROM intents
        WHERE intent_seq IN (SELECT reservation_id FROM new_rows)
        FOR KEY SHARE
    )
    SELECT count(*) INTO found FROM l;
    IF found <> wanted THEN
        RAISE EXCEPTION 'insert or update on table "reservations" violates foreign key to "intents"'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER intents_event_ref_ins AFTER INSERT ON intents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_events();
CREATE TRIGGER intents_event_ref_upd AFTER UPDATE ON intents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_events();
CREATE TRIGGER reservations_event_ref_ins AFTER INSERT ON reservations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_events();
CREATE TRIGGER reservations_event_ref_upd AFTER UPDATE ON reservations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_events();
CREATE TRIGGER reservations_intent_ref_ins AFTER INSERT ON reservations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_intents();
CREATE TRIGGER reservations_intent_ref_upd AFTER UPDATE ON reservations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_ref_intents();

-- Referenced side: keys never change (the WHEN runs without a function call
-- on the worker's state updates) ...
CREATE FUNCTION onsale_key_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the key of table "%" cannot change: it is referenced', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER events_key_immutable BEFORE UPDATE OF event_id ON events
    FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id)
    EXECUTE FUNCTION onsale_key_immutable();
CREATE TRIGGER intents_key_immutable BEFORE UPDATE OF intent_seq ON intents
    FOR EACH ROW WHEN (OLD.intent_seq IS DISTINCT FROM NEW.intent_seq)
    EXECUTE FUNCTION onsale_key_immutable();

-- ... and a referenced row is not deleted while referenced.
CREATE FUNCTION onsale_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM intents i JOIN old_rows o USING (event_id))
       OR EXISTS (SELECT 1 FROM reservations r JOIN old_rows o USING (event_id)) THEN
        RAISE EXCEPTION 'delete on table "events" violates foreign key from "intents"/"reservations"'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION onsale_intents_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM reservations r JOIN old_rows o ON r.reservation_id = o.intent_seq) THEN
        RAISE EXCEPTION 'delete on table "intents" violates foreign key from "reservations"'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER events_deleted AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_events_deleted();
CREATE TRIGGER intents_deleted AFTER DELETE ON intents
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_intents_deleted();
