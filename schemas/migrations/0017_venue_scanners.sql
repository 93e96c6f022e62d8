-- 0017_venue_scanners.sql - a scanner admits only tickets of its venues
-- (docs/tickets.md "Who may scan where").
--
-- Any account holding the scanner role used to admit any ticket of any
-- seller's event. Now the venue's owner (or an admin) assigns scanner
-- accounts to the venue (PUT /v1/venues/{id}/scanners/{user_id}); a scan
-- admits only a ticket of an event at a venue the scanner is assigned to,
-- checked at the read and again in the admitting UPDATE, so an unassign
-- committed before the UPDATE stops it. Only an account row holding the
-- scanner role can be assigned (ingress checks the role; the foreign key
-- needs the account). Removing the role later does not remove the row: the
-- scan route needs a scanner token, which the account no longer gets.
CREATE TABLE venue_scanners (
    venue_id    bigint NOT NULL REFERENCES venues,
    scanner_id  bigint NOT NULL REFERENCES users,
    assigned_by bigint NOT NULL CHECK (assigned_by > 0),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue_id, scanner_id)
);
-- The scan's check looks up (venue of the ticket's event, scanner): the
-- primary key serves it; this one lists a scanner's venues.
CREATE INDEX venue_scanners_scanner ON venue_scanners (scanner_id);
