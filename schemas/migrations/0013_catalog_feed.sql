-- 0013_catalog_feed.sql - the change feed of ingress's in-memory catalog
-- index (docs/search.md "The index in each node").
--
-- Each ingress node loads every event's searchable fields once and then
-- polls for the events whose catalog fields changed since: catalog_seq is
-- bumped from one sequence whenever a column the catalog filters on, sorts
-- by or renders changes, and events_catalog_seq (an index) answers
-- "catalog_seq > $last" by a range scan.
--
-- What bumps it: an INSERT (the column's default); an UPDATE of a catalog
-- column of events that really changes a value (the WHEN clause: the
-- worker's status writes and other updates that set a column to what it
-- was, or set a column the catalog does not use, such as owner_loaded_at
-- and max_active_holds, call no function at all); through the existing
-- triggers, a venue's name or city (venues_catalog_sync rewrites search
-- and city_key) and a price tier (catalog_price_refresh rewrites
-- price_min/price_max); and here, a venue's coordinates (the distance
-- filter), which no events column derives from.
--
-- The trap this column does not close by itself: nextval() is taken inside
-- the writing transaction, so a transaction that commits late makes a
-- smaller value visible after a larger one was seen. The poller re-reads a
-- lookback window (catalog.index_lookback_ms) for that; see
-- ingress/catalog_index_store.c.
--
-- Existing rows keep 0: a node's load reads them whole.

CREATE SEQUENCE catalog_seq;

ALTER TABLE events ADD COLUMN catalog_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN catalog_seq SET DEFAULT nextval('catalog_seq');

CREATE FUNCTION events_catalog_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.catalog_seq := nextval('catalog_seq');
    RETURN NEW;
END
$$;

-- BEFORE triggers fire in name order: events_catalog_fill (search,
-- city_key) runs before this one, so a document change is seen here.
CREATE TRIGGER events_catalog_seq
    BEFORE UPDATE OF name, category, description, venue_id, starts_at, onsale_at, status,
                     price_min, price_max, search, city_key ON events
    FOR EACH ROW
    WHEN ((OLD.name, OLD.category, OLD.description, OLD.venue_id, OLD.starts_at,
           OLD.onsale_at, OLD.status, OLD.price_min, OLD.price_max, OLD.search, OLD.city_key)
          IS DISTINCT FROM
          (NEW.name, NEW.category, NEW.description, NEW.venue_id, NEW.starts_at,
           NEW.onsale_at, NEW.status, NEW.price_min, NEW.price_max, NEW.search, NEW.city_key))
    EXECUTE FUNCTION events_catalog_bump();

CREATE FUNCTION venues_catalog_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE events SET catalog_seq = nextval('catalog_seq') WHERE venue_id = NEW.venue_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER venues_catalog_moved
    AFTER UPDATE OF lat, lon ON venues
    FOR EACH ROW WHEN ((OLD.lat, OLD.lon) IS DISTINCT FROM (NEW.lat, NEW.lon))
    EXECUTE FUNCTION venues_catalog_moved();

CREATE INDEX events_catalog_seq ON events (catalog_seq);
