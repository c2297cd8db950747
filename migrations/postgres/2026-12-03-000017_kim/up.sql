-- KIM, the route insurers really read (TA eAU chapter 5). An insurer destination reaches the
-- insurer by KIM when it has a KIM address (operator-configured, or looked up in the TI
-- directory); each practice sends from its own KIM account through its client module.
ALTER TABLE destinations ADD COLUMN kim_address TEXT;
-- 'operator', 'vzd' (TI directory) or 'file' (static mapping)
ALTER TABLE destinations ADD COLUMN kim_source TEXT;

-- The practice's KIM account at its client module. The password is never stored:
-- secret_ref names where it is read from ('env:NAME' or 'file:/path').
CREATE TABLE kim_accounts (
    practice_id TEXT PRIMARY KEY NOT NULL REFERENCES practices(id),
    address TEXT NOT NULL,
    smtp_host TEXT NOT NULL,
    smtp_port INTEGER NOT NULL,
    pop3_host TEXT NOT NULL,
    pop3_port INTEGER NOT NULL,
    -- 'implicit' (SMTPS/POP3S), 'starttls' or 'none'
    tls TEXT NOT NULL,
    -- the client module's certificate (PEM), trusted instead of public roots
    ca_pem TEXT,
    -- the Fachdienst's host:port named in the login name (optional since KIM 1.5.4)
    fachdienst_smtp TEXT,
    fachdienst_pop3 TEXT,
    mandant_id TEXT NOT NULL,
    client_system_id TEXT NOT NULL,
    workplace_id TEXT NOT NULL,
    user_id TEXT,
    konnektor_id TEXT,
    secret_ref TEXT NOT NULL,
    poll_minutes INTEGER NOT NULL,
    -- test insurers / reference environment: subject and file names with 'T' instead of 'E'
    test_data BOOLEAN NOT NULL DEFAULT FALSE,
    last_poll_at TIMESTAMP,
    last_poll_error TEXT,
    poll_requested_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);

-- One row per KIM mail sent (per attempt), written before the send: delivery status
-- notifications and insurer error messages refer back to its Message-ID.
CREATE TABLE kim_messages (
    message_id TEXT PRIMARY KEY NOT NULL,
    delivery_id TEXT NOT NULL REFERENCES deliveries(id),
    practice_id TEXT NOT NULL REFERENCES practices(id),
    recipient TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    receipt_at TIMESTAMP
);
CREATE INDEX kim_messages_by_delivery ON kim_messages (delivery_id);
-- Sent, no receipt yet: the 24-hour check reads only these.
CREATE INDEX kim_messages_awaiting_receipt ON kim_messages (practice_id, sent_at)
    WHERE receipt_at IS NULL AND sent_at IS NOT NULL;

-- Every mail read from a practice's KIM mailbox, kept (receipts, error messages, and what
-- matched nothing, for the operator). (practice_id, uidl) makes a second reading of the same
-- mail a no-op.
CREATE TABLE kim_inbox (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices(id),
    uidl TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    -- 'dsn', 'insurer_error', 'kim_error', 'other'
    kind TEXT NOT NULL,
    message_id TEXT,
    refers_to TEXT,
    delivery_id TEXT REFERENCES deliveries(id),
    summary TEXT NOT NULL,
    raw BYTEA NOT NULL,
    deleted_at TIMESTAMP,
    UNIQUE (practice_id, uidl)
);
CREATE INDEX kim_inbox_by_delivery ON kim_inbox (delivery_id);
CREATE INDEX kim_inbox_unmatched ON kim_inbox (received_at) WHERE delivery_id IS NULL;
