-- A practice-wide Störung (TI outage): every error answer for its documents is retryable.
ALTER TABLE practices ADD COLUMN outage_since TIMESTAMP;
