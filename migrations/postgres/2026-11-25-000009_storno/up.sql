-- Cancellation: the certificate is marked, an unsent eAU is withdrawn, a delivered one gets a
-- Storno delivery carrying its own document (UUID and XML).
ALTER TABLE certificates ADD COLUMN cancelled_at TIMESTAMP;
ALTER TABLE deliveries ADD COLUMN document_id TEXT;
ALTER TABLE deliveries ADD COLUMN document TEXT;
