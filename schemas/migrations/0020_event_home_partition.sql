-- 0020_event_home_partition.sql - each event keeps the partition it was
-- created on when the topics grow (docs/scaling.md "Growing the topics").
--
-- Every record of an event was placed by librdkafka's murmur2 over the
-- producer's current partition count: growing the intents topic (and its
-- control lane) moved an event's later records to another partition, owned
-- by another worker, while its earlier ones (holds, waiting fans) stayed in
-- the first: two writers for one event, FIFO broken, a cancel sent after the
-- growth never reaching its intent. Now an event's home partition is fixed
-- when it is created: murmur2(decimal event_id) % events.partitions, where
-- events.partitions is the topics' partition count at that moment
-- (queue/producer.h q_partition_of_event; ingress sets it, and a row written
-- without it takes the partitions the workers have claimed, below). Every
-- producer sends the event's records to that partition explicitly, and a
-- worker never applies a record of an event homed on another partition.
--
-- Existing events get the partition count the workers have claimed
-- (partition_owner has a row for every partition ever claimed): the count
-- their records were placed with so far.
CREATE FUNCTION onsale_claimed_partitions() RETURNS integer
    LANGUAGE sql STABLE
    AS $$ SELECT greatest(count(*), 1)::integer FROM partition_owner $$;

ALTER TABLE events
    ADD COLUMN partitions integer NOT NULL DEFAULT onsale_claimed_partitions()
        CHECK (partitions BETWEEN 1 AND 65536);

-- Everything that reads events.partitions keeps it (ingress's home cache,
-- the ev:<id> Redis hash, the worker's loaded events): changing it would
-- move the event's home while its records sit in the old one, two writers
-- for one event. So it is fixed once the event has any intent or a partition
-- owner has loaded it (owner_loaded_at: any record of it was applied, a
-- status change too, and an intent not yet committed is invisible here);
-- before that (an event made by hand, nothing of it sent yet) it may still
-- be set. The repair for a wrong count is in docs/scaling.md "Growing the
-- topics".
CREATE FUNCTION onsale_event_partitions_fixed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.partitions <> OLD.partitions
       AND (OLD.owner_loaded_at IS NOT NULL
            OR EXISTS (SELECT 1 FROM intents WHERE event_id = OLD.event_id)) THEN
        RAISE EXCEPTION 'event % was loaded or has intents: its partition count (%) is fixed',
            OLD.event_id, OLD.partitions
            USING ERRCODE = 'check_violation',
                  HINT = 'see docs/scaling.md "Growing the topics": grow the topics instead';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_partitions_fixed
    BEFORE UPDATE OF partitions ON events
    FOR EACH ROW EXECUTE FUNCTION onsale_event_partitions_fixed();

-- A join a producer placed on another partition than its event's home is
-- rejected there (reason misrouted) and applied nowhere: its fan gets an
-- answer, and the event keeps one writer.
ALTER TABLE intents DROP CONSTRAINT intents_reason_check;
ALTER TABLE intents ADD CONSTRAINT intents_reason_check
    CHECK (reason IN ('sold_out', 'insufficient_seats', 'duplicate', 'sale_closed', 'cancelled',
                      'misrouted'));
