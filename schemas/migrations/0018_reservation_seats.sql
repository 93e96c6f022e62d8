-- 0018_reservation_seats.sql - a reservation names its seats.
--
-- A poll whose result Redis does not hold (Redis restarted, or the owner
-- dropped the results of a failed projection: docs/pipeline.md) is answered
-- from PostgreSQL, with the reservation's seats. Those were found by
-- seats.reservation_id, which no index covers (an index on it would make
-- every hold's seat UPDATE a non-HOT one, in every index of seats), so each
-- such poll read every seat of the event (5.2 against 1.1 ms a poll for
-- 50,000 seats on a quiet box, about 18 ms on a loaded one), and
-- a crowd of held fans polling after a Redis hiccup took ingress's job
-- threads for the rest of the sale (bench/NOTES.md, h14-e2e). The owner now
-- writes the seat numbers with the reservation (seat_nos, in the order it
-- allocated them), and the poll reads those seats by the primary key, still
-- only while they name the reservation.
--
-- NULL: a reservation written before this migration that holds no seat any
-- more (below, every one that still holds some is filled in, with the seats
-- it still holds: a purchase whose ticket was cancelled names fewer than
-- seat_count). The fill reads every taken seat under the ALTER's lock on
-- reservations, which the owners' batches wait for: apply it outside a sale.
ALTER TABLE reservations ADD COLUMN seat_nos integer[];

UPDATE reservations r SET seat_nos = g.nos
FROM (SELECT reservation_id, event_id, array_agg(seat_no ORDER BY seat_no) AS nos
      FROM seats WHERE reservation_id IS NOT NULL GROUP BY reservation_id, event_id) g
WHERE g.reservation_id = r.reservation_id AND g.event_id = r.event_id;
