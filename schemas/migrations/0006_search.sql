-- 0006_search.sql - catalog search that scales to a million events
-- (docs/search.md): full-text search with ranking and prefix matching,
-- trigram matching of names for typos, and an index behind every filter and
-- sort of GET /v1/events.
--
-- What the catalog filters and sorts on is kept on the events row itself, by
-- the database, so that one index answers each query shape:
--   search      tsvector of name (A), category and venue name (B), city (C)
--               and description (D), 'simple' configuration (no stemming:
--               names of artists are not English words);
--   city_key    lower(venues.city), for the city filter;
--   price_min / price_max   the event's tier price range (NULL: no tiers).
-- Triggers keep them true: on events (insert, or a change of the columns
-- they derive from), on venues (name or city changed: every event of the
-- venue), and on price_tiers (any insert, update or delete).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE venues ADD COLUMN address text CHECK (length(address) BETWEEN 1 AND 300);

ALTER TABLE events
    ADD COLUMN search    tsvector,
    ADD COLUMN city_key  text,
    ADD COLUMN price_min bigint,
    ADD COLUMN price_max bigint;

-- The search document of an event. IMMUTABLE: it depends on its arguments only.
CREATE FUNCTION catalog_document(e_name text, e_category text, e_description text,
                                 v_name text, v_city text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple', coalesce(e_name, '')), 'A')
        || setweight(to_tsvector('simple', coalesce(e_category, '') || ' ' || coalesce(v_name, '')), 'B')
        || setweight(to_tsvector('simple', coalesce(v_city, '')), 'C')
        || setweight(to_tsvector('simple', coalesce(e_description, '')), 'D')
$$;

CREATE FUNCTION events_catalog_fill() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    vn text;
    vc text;
BEGIN
    SELECT name, city INTO vn, vc FROM venues WHERE venue_id = NEW.venue_id;
    NEW.search := catalog_document(NEW.name, NEW.category, NEW.description, vn, vc);
    NEW.city_key := lower(vc);
    RETURN NEW;
END
$$;

CREATE TRIGGER events_catalog_fill
    BEFORE INSERT OR UPDATE OF name, category, description, venue_id ON events
    FOR EACH ROW EXECUTE FUNCTION events_catalog_fill();

CREATE FUNCTION venues_catalog_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE events e
       SET search = catalog_document(e.name, e.category, e.description, NEW.name, NEW.city),
           city_key = lower(NEW.city)
     WHERE e.venue_id = NEW.venue_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER venues_catalog_sync
    AFTER UPDATE OF name, city ON venues
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.city IS DISTINCT FROM NEW.city)
    EXECUTE FUNCTION venues_catalog_sync();

-- Price range: one statement-level trigger per kind of change (a transition
-- table belongs to one event), all recomputing the touched events' range.
CREATE FUNCTION catalog_price_refresh(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE events e
       SET price_min = p.mn, price_max = p.mx
      FROM (SELECT t.event_id, min(pt.price_cents) AS mn, max(pt.price_cents) AS mx
              FROM unnest(ids) AS t(event_id)
              LEFT JOIN price_tiers pt ON pt.event_id = t.event_id
             GROUP BY t.event_id) p
     WHERE e.event_id = p.event_id
       AND (e.price_min, e.price_max) IS DISTINCT FROM (p.mn, p.mx)
$$;

CREATE FUNCTION price_tiers_catalog_ins() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_price_refresh(ARRAY(SELECT DISTINCT event_id FROM new_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION price_tiers_catalog_del() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_price_refresh(ARRAY(SELECT DISTINCT event_id FROM old_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION price_tiers_catalog_upd() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM catalog_price_refresh(ARRAY(SELECT event_id FROM new_rows
                                        UNION SELECT event_id FROM old_rows));
    RETURN NULL;
END
$$;

CREATE TRIGGER price_tiers_catalog_ins AFTER INSERT ON price_tiers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION price_tiers_catalog_ins();
CREATE TRIGGER price_tiers_catalog_del AFTER DELETE ON price_tiers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION price_tiers_catalog_del();
CREATE TRIGGER price_tiers_catalog_upd AFTER UPDATE ON price_tiers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION price_tiers_catalog_upd();

-- Existing rows.
UPDATE events e
   SET search = catalog_document(e.name, e.category, e.description, v.name, v.city),
       city_key = lower(v.city)
  FROM venues v
 WHERE v.venue_id = e.venue_id;
UPDATE events e
   SET price_min = p.mn, price_max = p.mx
  FROM (SELECT event_id, min(price_cents) AS mn, max(price_cents) AS mx
          FROM price_tiers GROUP BY event_id) p
 WHERE e.event_id = p.event_id;

-- One index per query shape (docs/search.md shows each plan). Every sort key
-- ends in event_id, the keyset's tie-break.
CREATE INDEX events_search ON events USING gin (search);
CREATE INDEX events_name_trgm ON events USING gin (name gin_trgm_ops);
DROP INDEX events_starts_at;
CREATE INDEX events_starts ON events (starts_at, event_id);
CREATE INDEX events_city_starts ON events (city_key, starts_at, event_id);
CREATE INDEX events_category_starts ON events (category, starts_at, event_id);
CREATE INDEX events_city_category_starts ON events (city_key, category, starts_at, event_id);
CREATE INDEX events_venue_starts ON events (venue_id, starts_at, event_id);
CREATE INDEX events_price ON events (price_min, event_id);
CREATE INDEX venues_position ON venues (lat, lon) WHERE lat IS NOT NULL AND lon IS NOT NULL;
