-- A claim no longer writes the state: a delivery being sent stays 'pending' under its worker's
-- lease (readers see it in flight while lease_until is set). The claim then changes no column
-- an index holds, and PostgreSQL writes its new row version into the same page without new
-- index entries (a HOT update) when the page has room: half of each page is kept free for it.
UPDATE deliveries SET state = 'pending' WHERE state = 'in_flight';
ALTER TABLE deliveries SET (fillfactor = 50);

-- Attempt rows are written only by the queue, for a delivery it holds in the same transaction,
-- and deliveries are never deleted. The foreign key's check ran a trigger and took a lock on the
-- delivery's row for every attempt: half of the attempt insert's time and a WAL record of its
-- own. The tests check after every test that each attempt row has its delivery.
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;
