"""catalog_data.py - a realistic catalog generated set-based in SQL, for
scripts/bench --only catalog (1,000,000 events) and the query-plan tests
(tests/integration/test_search.py, fewer events).

Cities: `cities` synthetic names (prefix + suffix: "Ashford", "Kingsport"...)
at spread-out coordinates, each with venues/cities venues a few km around
it. Events: artist-like names (a person "Olivia Hart" or a band "The
Electric Foxes", some with a tour suffix), a category, a description built
from the same words, a start within two years, and three price tiers (one
per section of the venue), so the database's own triggers fill the search
document and the price range. "Taylor Swift" is one of the artists.

fill() is a bulk load: it drops the events' secondary indexes and recreates
them from their own definitions afterwards, and inserts events and tiers
with triggers off, computing the columns the triggers keep (search,
city_key, price range) with the same catalog_document() and min/max, and
the lexemes catalog_words must hold.
"""
import time

FIRST = ("Olivia Liam Emma Noah Ava Elijah Sophia Lucas Mia Mason Amelia Ethan Harper Logan "
         "Evelyn James Abigail Aiden Ella Jackson Scarlett Sebastian Grace Mateo Chloe Jack Lily "
         "Owen Aria Leo Nora Henry Zoe Wyatt Riley Julian Layla Levi Luna Isaac Hazel Gabriel "
         "Aurora Carter Violet Jayden Stella Dylan Ivy Miles Ruby Ezra Alice Caleb Iris Nathan "
         "Jade Adrian Rosa Felix Clara Hugo Elena Oscar Maya Theo Lena Max Nina Axel Eva Ruben "
         "Lara Emil Sara Milo Vera Nico Alma Enzo Ines Kai Lea Omar Yara Ravi Anya Tomas Freya "
         "Dario Selma Bruno Greta").split()
LAST = ("Hart Stone Rivers Brooks Vance Hale Monroe Reyes Fox Lane Knight Frost Shaw Wolfe Blake "
        "Carter Hayes Quinn Rhodes Sloan Pierce Marsh Dalton Fischer Moreau Rossi Novak Larsen "
        "Costa Silva Weber Berg Lindqvist Kovacs Horvat Petrov Ibarra Santos Okafor Mensah Adeyemi "
        "Tanaka Sato Kim Park Chen Nakamura Ortega Navarro Castillo Vargas Romero Delgado Ramos "
        "Moreno Jimenez Bishop Crane Drake Ellis Finch Grant Holt Irving Jensen Keller Lowe "
        "Mercer Nash Oakley Price Ray Sutton Turner Underwood Voss Webb York Zane Abbott Bell "
        "Cole Dunn Ford Gray Hunt Kent Lloyd Mills Nolan Page Reed Sharp Todd Wade Young").split()
ADJ = ("Electric Velvet Midnight Golden Silver Crimson Neon Wild Broken Frozen Burning Hollow "
       "Lonely Restless Silent Savage Cosmic Lunar Solar Atomic Paper Glass Iron Copper Rusty "
       "Dusty Misty Stormy Sunny Rainy Hungry Lucky Crazy Lazy Dizzy Happy Angry Gentle Brave "
       "Royal Secret Hidden Lost Final Early Late Northern Southern Eastern Western Arctic Tropical "
       "Urban Rural Digital Analog Magnetic Radiant Violent Quiet Loud Bright Dark Deep High "
       "Low Sweet Bitter Salty Smoky Sonic Astral Feral Mellow Fuzzy Jagged Shiny Twisted "
       "Wicked Mystic Velour Scarlet Indigo Amber Ivory Ebony Azure Emerald Obsidian").split()
NOUN = ("Foxes Wolves Ravens Tigers Sparrows Owls Hounds Lions Bears Crows Hawks Serpents "
        "Dragons Ghosts Kings Queens Knights Pilots Sailors Riders Drifters Strangers Lovers "
        "Dreamers Thieves Saints Sinners Rebels Monks Machines Engines Rockets Satellites Comets "
        "Planets Moons Stars Waves Tides Rivers Mountains Valleys Forests Deserts Islands Cities "
        "Streets Bridges Towers Gardens Mirrors Shadows Echoes Voices Hearts Bones Roses Lilies "
        "Daisies Orchids Thorns Flames Sparks Embers Storms Clouds Winds Rains Lightning Thunder "
        "Arrows Blades Crowns Keys Locks Doors Windows Candles Lanterns Bells Drums Guitars "
        "Pianos Violins Trumpets Radios Tapes Records Satellites Horizons Canyons").split()
TOUR = ["", "", "", " Live", " World Tour", " Unplugged", " Farewell Tour", " Reunion Tour",
        " in Concert", " Acoustic Night", " Greatest Hits", " Summer Tour"]
CATEGORIES = ("concert rock pop jazz classical hiphop electronic folk country metal opera "
              "comedy theatre dance festival").split()
PHRASES = ["an unforgettable night of", "the long awaited return of", "an intimate evening with",
           "the biggest show of the year:", "a special acoustic set by", "one night only:",
           "live on stage:", "celebrating twenty years of", "the new album tour of",
           "sold out last year, back again:"]
PREFIX = ("Ash Bel Cal Dun El Fair Glen Har Ire Kings Lan Mar Nor Oak Pen Ros Sil Tor Val "
          "Wes").split()
SUFFIX = "ford ton bury field haven mouth port ridge vale wick".split()
SECTIONS = (("Floor", 20, 30, 4), ("Lower", 30, 40, 2), ("Upper", 40, 50, 1))


def arr(words):
    return "ARRAY[" + ",".join("'" + w.replace("'", "''") + "'" for w in words) + "]"


def pick(words, seed_expr):
    """A word of the list chosen by a hash of seed_expr (deterministic)."""
    return f"({arr(words)})[1 + (abs(hashint8({seed_expr})) % {len(words)})]"


def fill(conn, events, cities=200, venues=5000, log=lambda m: None):
    """Creates cities*... venues and `events` events with tiers in conn's
    database (autocommit connection). Returns seconds taken."""
    t0 = time.time()
    cur = conn.cursor()
    cur.execute("SET maintenance_work_mem = '256MB'")
    cur.execute("SET synchronous_commit = off")
    per_city = venues // cities
    # Cities and venues.
    cur.execute(f"""
        CREATE TEMP TABLE bench_cities AS
        SELECT i, ({arr(PREFIX)})[1 + i % 20] || ({arr(SUFFIX)})[1 + (i / 20) % 10] AS name,
               -45 + (abs(hashint8(i * 7 + 1)) % 10500) / 100.0 AS lat,
               -170 + (abs(hashint8(i * 7 + 2)) % 34000) / 100.0 AS lon
          FROM generate_series(0, {cities - 1}) i""")
    cur.execute(f"""
        INSERT INTO venues (owner_id, name, city, country, lat, lon, capacity, address)
        SELECT 1,
               {pick(ADJ, 'c.i * 100 + k')} || ' ' ||
               (ARRAY['Arena','Hall','Theatre','Stadium','Club','Dome','Pavilion','Amphitheatre'])
                 [1 + (c.i + k) % 8],
               c.name, 'Country ' || (c.i % 40),
               c.lat + ((abs(hashint8(c.i * 1000 + k)) % 2000) - 1000) / 10000.0,
               c.lon + ((abs(hashint8(c.i * 1000 + k + 500)) % 2000) - 1000) / 10000.0,
               3200, k || ' ' || {pick(NOUN, 'k * 31 + c.i')} || ' Street, ' || c.name
          FROM bench_cities c, generate_series(1, {per_city}) k""")
    cur.execute(f"""
        INSERT INTO sections (venue_id, name, position, rows, seats_per_row)
        SELECT v.venue_id, s.name, s.pos, s.r, s.p
          FROM venues v,
               (VALUES ('Floor', 0, 20, 30), ('Lower', 1, 30, 40), ('Upper', 2, 40, 50))
               AS s(name, pos, r, p)
         WHERE v.owner_id = 1 AND v.address IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM sections x WHERE x.venue_id = v.venue_id)""")
    log(f"catalog data: {venues} venues in {cities} cities ({time.time() - t0:.1f}s)")
    # Bulk load: drop the events' secondary indexes, load, recreate them.
    cur.execute("""SELECT indexname, indexdef FROM pg_indexes
                    WHERE tablename = 'events' AND indexname <> 'events_pkey'""")
    idx = cur.fetchall()
    for name, _ in idx:
        cur.execute(f"DROP INDEX {name}")
    cur.execute("SELECT min(venue_id), max(venue_id) FROM venues WHERE address IS NOT NULL")
    vmin, vmax = cur.fetchone()
    t = time.time()
    artist = (f"CASE WHEN g % 500 = 0 THEN 'Taylor Swift' "
              f"WHEN g % 2 = 0 THEN {pick(FIRST, 'g * 3')} || ' ' || {pick(LAST, 'g * 5')} "
              f"ELSE 'The ' || {pick(ADJ, 'g * 7')} || ' ' || {pick(NOUN, 'g * 11')} END")
    # A bulk load: triggers and foreign-key checks off for these two
    # statements (session_replication_role), the columns the triggers keep
    # computed here by the same catalog_document() and the same min/max.
    cur.execute("SET session_replication_role = replica")
    cur.execute(f"""
        INSERT INTO events (venue_id, seller_id, name, category, description, starts_at,
                            onsale_at, status, search, city_key, price_min, price_max)
        SELECT x.venue_id, 1, x.name, x.category, x.description, x.starts_at,
               timestamptz '2026-01-01', 'on_sale',
               catalog_document(x.name, x.category, x.description, v.name, v.city),
               lower(v.city), x.base, x.base * 4
          FROM (SELECT {vmin} + abs(hashint8(g * 13)) % ({vmax - vmin + 1}) AS venue_id,
                       a.artist || {pick(TOUR, 'g * 17')} AS name,
                       {pick(CATEGORIES, 'g * 19')} AS category,
                       initcap({pick(PHRASES, 'g * 23')}) || ' ' || a.artist
                         || ', with special guests ' || {pick(ADJ, 'g * 29')} || ' '
                         || {pick(NOUN, 'g * 31')} || '. Doors open an hour before the show.'
                         AS description,
                       timestamptz '2027-01-01'
                         + (abs(hashint8(g * 37)) % (730 * 24)) * interval '1 hour' AS starts_at,
                       (1500 + abs(hashint8(g * 41)) % 13500) / 100 * 100 AS base
                  FROM generate_series(1, {events}) g,
                       LATERAL (SELECT {artist} AS artist) a) x
          JOIN venues v ON v.venue_id = x.venue_id""")
    log(f"catalog data: {events} events ({time.time() - t:.1f}s)")
    t = time.time()
    cur.execute("""
        INSERT INTO price_tiers (event_id, section_id, price_cents)
        SELECT e.event_id, s.section_id, e.price_min * (ARRAY[4, 2, 1])[s.position + 1]
          FROM events e JOIN sections s ON s.venue_id = e.venue_id
         WHERE e.seller_id = 1
           AND NOT EXISTS (SELECT 1 FROM price_tiers p WHERE p.event_id = e.event_id)""")
    # The lexemes of the new documents (trigger catalog_words_ins, off here).
    # ts_stat: 17 s for a million documents, where DISTINCT over unnest took 25 s.
    cur.execute("""
        INSERT INTO catalog_words (word)
        SELECT word FROM ts_stat('SELECT search FROM events WHERE seller_id = 1')
        ON CONFLICT DO NOTHING""")
    cur.execute("SET session_replication_role = DEFAULT")
    log(f"catalog data: price tiers and words ({time.time() - t:.1f}s)")
    t = time.time()
    for name, ddl in idx:
        cur.execute(ddl)
    cur.execute("VACUUM ANALYZE events")
    cur.execute("VACUUM ANALYZE venues")
    cur.execute("ANALYZE catalog_words")
    cur.execute("ANALYZE price_tiers")
    log(f"catalog data: indexes and analyze ({time.time() - t:.1f}s)")
    return time.time() - t0
