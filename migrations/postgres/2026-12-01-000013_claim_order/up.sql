-- Claims take the oldest due deliveries of one insurer. Without this index a claim sorts the
-- whole backlog (a million rows during a long outage) on every round; with it, it reads the
-- first rows in order. Partial: delivered rows, kept forever, stay out of it.
CREATE INDEX deliveries_claim_order ON deliveries (insurer_ik, created_at, id)
    WHERE state IN ('pending', 'in_flight');
