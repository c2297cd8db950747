-- An insurer's acknowledgement names documents by their UUID: a Storno's is its own
-- document_id (set on Storno deliveries only, so the index stays small and an eAU delivery's
-- state changes never touch it). Without it every acknowledged page scanned the outbox.
CREATE INDEX deliveries_by_document ON deliveries (document_id) WHERE document_id IS NOT NULL;
