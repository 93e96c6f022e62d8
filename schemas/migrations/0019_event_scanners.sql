-- 0019_event_scanners.sql - a scanner bound to one event, not to every
-- event of a venue (docs/tickets.md "Who may scan where").
--
-- A venue assignment (0017) lets a scanner admit the tickets of every event
-- at the venue, past and future: a door crew hired for one night could
-- admit another night's tickets. The event's seller (or an admin) may now
-- assign a scanner account to one event instead (PUT
-- /v1/events/{id}/scanners/{user_id}); a scan admits a ticket when its
-- scanner is assigned to the ticket's venue or to its event, checked at the
-- read and again in the admitting UPDATE, as for venues. Nothing existing
-- changes: venue assignments keep admitting every event at the venue.
CREATE TABLE event_scanners (
    event_id    bigint NOT NULL REFERENCES events,
    scanner_id  bigint NOT NULL REFERENCES users,
    assigned_by bigint NOT NULL CHECK (assigned_by > 0),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, scanner_id)
);
-- The scan's check looks up (event of the ticket, scanner): the primary key
-- serves it; this one lists a scanner's events.
CREATE INDEX event_scanners_scanner ON event_scanners (scanner_id);
