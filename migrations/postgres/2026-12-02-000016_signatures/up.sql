-- Signed eAU documents (CAdES enveloping, .p7s). The signed bytes live beside the document they
-- sign: an eAU's on its certificate, a Storno's on its delivery, so a claim or an export reads
-- them in the row it reads anyway. Who signed, when and how is in `signatures`, one row per
-- signed document (eAU or Storno bundle UUID), never updated.
ALTER TABLE certificates ADD COLUMN signed_p7s BYTEA;
ALTER TABLE deliveries ADD COLUMN signed_document BYTEA;

CREATE TABLE signatures (
    document_id TEXT PRIMARY KEY NOT NULL,
    certificate_id TEXT NOT NULL REFERENCES certificates(id),
    practice_id TEXT NOT NULL REFERENCES practices(id),
    -- 'import' (signed by practice software), 'hba' (QES with the doctor's eHBA through the
    -- Konnektor), 'smcb' (SMC-B, BMV-Ä Anlage 2b)
    method TEXT NOT NULL,
    signer_subject TEXT NOT NULL,
    signer_serial TEXT NOT NULL,
    signer_issuer TEXT NOT NULL,
    signing_time TIMESTAMP,
    p7s_sha256 TEXT NOT NULL,
    signed_by TEXT NOT NULL,
    signed_at TIMESTAMP NOT NULL
);
CREATE INDEX signatures_by_certificate ON signatures (certificate_id);

-- Documents of a signing practice wait in state 'awaiting_signature' (claims never take them).
CREATE INDEX deliveries_awaiting_signature ON deliveries (practice_id, created_at)
    WHERE state = 'awaiting_signature';

-- The practice's Konnektor. Secrets are never stored: `secret_ref` names where the Basic-auth
-- password or the client certificate (PEM) is read from: 'env:NAME' or 'file:/path'.
CREATE TABLE konnektor_settings (
    practice_id TEXT PRIMARY KEY NOT NULL REFERENCES practices(id),
    base_url TEXT NOT NULL,
    mandant_id TEXT NOT NULL,
    client_system_id TEXT NOT NULL,
    workplace_id TEXT NOT NULL,
    user_id TEXT,
    card TEXT NOT NULL,
    iccsn TEXT,
    auth TEXT NOT NULL,
    basic_user TEXT,
    secret_ref TEXT,
    accept_invalid_certs BOOLEAN NOT NULL,
    smcb_allowed BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
