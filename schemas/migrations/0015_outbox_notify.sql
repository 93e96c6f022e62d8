-- 0015_outbox_notify.sql - the relay is told when outbox rows are written
-- (issue 12; bench/NOTES.md "The relay's pickup").
--
-- onsale-payments' threads polled the outbox every payments.poll_ms
-- (100 ms) when idle: ~40 claims a second for 4 threads, each walking
-- outbox_due's entries of the rows finished since the last vacuum. That
-- cost PostgreSQL seconds of CPU per sale on a box the sale shares, and a
-- new row still waited up to a poll for its claim.
--
-- Now every INSERT that writes outbox rows notifies the channel
-- onsale_outbox once (a statement-level trigger; NOTIFY is transactional:
-- the relay hears it when the writer's batch commits, never before the
-- rows are visible, and not at all if the batch rolls back). Each charger
-- thread LISTENs on its connection and claims at once when woken; its
-- idle poll only remains a safety net (rows whose retry comes due,
-- expired leases, a notification lost with a broken connection), so
-- payments.poll_ms is 1000 by default.
--
-- The payload is empty: all that matters is "look now". PostgreSQL folds
-- identical notifications of one transaction into one.
CREATE FUNCTION onsale_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('onsale_outbox', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify_ins AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION onsale_outbox_notify();
