-- Claims and the insurers' pull export read the oldest open deliveries of one insurer in
-- (created_at, id) order. Without this index every claim and every export page sorts the whole
-- backlog (a million rows during a long outage); with it they read the next rows in order.
-- Partial: delivered rows, kept forever, stay out of it. The queries repeat the predicate
-- literally, so both PostgreSQL and SQLite can use it.
CREATE INDEX deliveries_open_by_insurer ON deliveries (insurer_ik, created_at, id)
    WHERE state IN ('pending', 'in_flight', 'dead');
