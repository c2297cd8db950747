-- Insurers reconcile paper and electronic (issue #17): scanned KK copies are matched to the
-- documents held for the insurer's IK.

-- A KK copy that reached the insurer on paper and was matched to its document.
ALTER TABLE certificates ADD COLUMN paper_received_at TIMESTAMP;

-- Insurer accounts: users of the role 'insurer' belong to one IK, no practice.
-- SQLite cannot change a CHECK in place: the table is rebuilt (sessions end, as in 000014).
CREATE TABLE users_new (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT REFERENCES practices(id),
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'staff' CHECK (role IN ('staff', 'admin', 'operator', 'insurer')),
    created_at TIMESTAMP NOT NULL,
    deactivated_at TIMESTAMP,
    insurer_ik TEXT,
    CHECK ((role IN ('staff', 'admin')) = (practice_id IS NOT NULL)),
    CHECK ((role = 'insurer') = (insurer_ik IS NOT NULL))
);
INSERT INTO users_new (id, practice_id, username, password_hash, role, created_at, deactivated_at)
SELECT id, practice_id, username, password_hash, role, created_at, deactivated_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_by_practice ON users (practice_id);

-- One upload of scans: who, when, how far, and the counts per outcome.
CREATE TABLE scan_uploads (
    id TEXT PRIMARY KEY NOT NULL,
    insurer_ik TEXT NOT NULL,
    -- the user name, or 'api-token'
    uploaded_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    -- 'running', 'done', 'interrupted' (the server stopped while it ran)
    state TEXT NOT NULL,
    files INTEGER NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    electronic INTEGER NOT NULL DEFAULT 0,
    paper_only INTEGER NOT NULL DEFAULT 0,
    ambiguous INTEGER NOT NULL DEFAULT 0,
    unreadable INTEGER NOT NULL DEFAULT 0,
    other_insurer INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX scan_uploads_by_insurer ON scan_uploads (insurer_ik, created_at);

-- One result: a page, or one of several KK copies on one sheet (barcode_no). detail is JSON:
-- the record (paper_only), the candidates (ambiguous), the reason (unreadable); certificate_id
-- names the matched document (electronic).
CREATE TABLE scan_pages (
    upload_id TEXT NOT NULL REFERENCES scan_uploads(id),
    page_no INTEGER NOT NULL,
    barcode_no INTEGER NOT NULL,
    file_no INTEGER NOT NULL,
    file_page INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('electronic', 'paper_only', 'ambiguous', 'unreadable', 'other_insurer')),
    certificate_id TEXT,
    detail TEXT NOT NULL,
    PRIMARY KEY (upload_id, page_no, barcode_no)
);

-- Candidates of a page: the IK's documents of one patient.
CREATE INDEX certificates_by_insurer_and_kvnr ON certificates (insurer_ik, kvnr);
