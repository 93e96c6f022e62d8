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

-- The upgrade: before this table every scanner account admitted anywhere,
-- so an empty table would refuse every scanner at its next scan. Each
-- (venue of the event, admitted_by) of an admitted ticket is assigned, as
-- by the venue's owner, when that id is still an account holding the
-- scanner role (admitted_by is no foreign key: a minted token may name no
-- account; a role revoked since is not given back). A scanner that never
-- admitted a ticket has no history to go by: its venue's owner assigns it
-- after the upgrade (docs/tickets.md "Upgrading to venue-bound scanners").
-- The tickets.scanners_per_venue cap is not applied here; the list shows
-- every assignment (ingress/scanner_store.h).
INSERT INTO venue_scanners (venue_id, scanner_id, assigned_by)
SELECT DISTINCT e.venue_id, t.admitted_by, v.owner_id
FROM tickets t
JOIN events e ON e.event_id = t.event_id
JOIN venues v ON v.venue_id = e.venue_id
JOIN users u ON u.user_id = t.admitted_by AND 'scanner' = ANY (u.roles)
WHERE t.admitted_by IS NOT NULL;
