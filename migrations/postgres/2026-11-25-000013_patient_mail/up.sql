-- Patient mail rides on the same outbox as insurer deliveries (one claim, lease, backoff and
-- attempt history): a delivery's channel is 'insurer' or 'mail'. A mail row's `insurer_ik` is ''.
ALTER TABLE deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT 'insurer';
CREATE INDEX deliveries_channel_due ON deliveries (channel, state, next_attempt_at);

-- What a patient mail needs besides its delivery row: the address, the recorded consent, the
-- password policy and a Message-ID fixed at capture, so a resend after a lost answer is the same mail.
CREATE TABLE patient_mails (
    delivery_id TEXT PRIMARY KEY NOT NULL REFERENCES deliveries(id),
    certificate_id TEXT NOT NULL REFERENCES certificates(id),
    recipient TEXT NOT NULL,
    employer_copy BOOLEAN NOT NULL DEFAULT FALSE,
    password_policy TEXT NOT NULL,
    password TEXT,
    message_id TEXT NOT NULL UNIQUE,
    consent_by TEXT NOT NULL,
    consent_at TIMESTAMP NOT NULL,
    requested_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX patient_mails_by_certificate ON patient_mails (certificate_id);
