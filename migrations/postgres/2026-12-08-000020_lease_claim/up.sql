-- A claim no longer writes the state: a delivery being sent stays 'pending' under its worker's
-- lease (readers see it in flight while lease_until is set). The claim then changes no column
-- an index holds, and PostgreSQL writes its new row version into the same page without new
-- index entries (a HOT update) when the page has room: half of each page is kept free for it.
UPDATE deliveries SET state = 'pending' WHERE state = 'in_flight';
ALTER TABLE deliveries SET (fillfactor = 50);
