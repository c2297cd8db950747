ALTER TABLE deliveries DROP COLUMN document;
ALTER TABLE deliveries DROP COLUMN document_id;
ALTER TABLE certificates DROP COLUMN cancelled_at;
