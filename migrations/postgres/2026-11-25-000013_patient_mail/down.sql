DROP TABLE patient_mails;
DROP INDEX deliveries_channel_due;
ALTER TABLE deliveries DROP COLUMN channel;
