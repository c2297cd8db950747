DROP TABLE konnektor_settings;
DROP INDEX deliveries_awaiting_signature;
DROP TABLE signatures;
ALTER TABLE deliveries DROP COLUMN signed_document;
ALTER TABLE certificates DROP COLUMN signed_p7s;
