-- 0011_catalog_words.sql - cheaper plans for the catalog search at a million
-- events (docs/search.md "Query plans"; before/after in bench/NOTES.md).
--
-- catalog_words: every lexeme of every event's search document. The last
-- word of q is a prefix ('stor':*); GIN answers a prefix by first collecting
-- every match of every lexeme it begins into a bitmap, which took 25 of the
-- 30 ms of 'sweet & stor'. Ingress instead reads the lexemes the prefix
-- begins from this table (a btree range) and asks for them exactly
-- ('sweet' & ('storms' | 'stormy'): the same rows, 8 ms). The table must
-- hold every lexeme in events.search, or a prefix would miss rows: the
-- triggers below add the lexemes of each inserted or changed document. A
-- lexeme whose events are gone stays (it then matches nothing: harmless).
-- COLLATE "C": byte order, the order tsquery prefixes compare in.

CREATE TABLE catalog_words (
    word text COLLATE "C" PRIMARY KEY
);

-- ts_stat: every distinct lexeme of the documents (17 s for a million).
INSERT INTO catalog_words (word)
SELECT word FROM ts_stat('SELECT search FROM events WHERE search IS NOT NULL')
ON CONFLICT DO NOTHING;

-- Inserts: one statement for all the rows of a statement.
CREATE FUNCTION catalog_words_ins() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_words (word)
    SELECT DISTINCT w FROM new_rows, unnest(tsvector_to_array(new_rows.search)) AS w
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER catalog_words_ins AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_words_ins();

-- Updates: per row, and only when the document changed. The column list is
-- the document's sources too: events_catalog_fill rewrites search from
-- them (an UPDATE of name alone changes search), and other updates of
-- events (status, holds: the worker's) never fire this trigger.
CREATE FUNCTION catalog_words_upd() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_words (word)
    SELECT w FROM unnest(tsvector_to_array(NEW.search)) AS w
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER catalog_words_upd
    AFTER UPDATE OF search, name, category, description, venue_id ON events
    FOR EACH ROW WHEN (NEW.search IS DISTINCT FROM OLD.search)
    EXECUTE FUNCTION catalog_words_upd();

-- Price order: the page's keys are chosen from this index alone (an index
-- only scan), the date and price filters included, and only the page's
-- rows are read (a week's events by price: 0.3 ms instead of 1.1-5 ms).
DROP INDEX events_price;
CREATE INDEX events_price ON events (price_min, event_id) INCLUDE (starts_at, price_max);
