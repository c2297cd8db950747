-- Insurers reconcile paper and electronic (issue #17): scanned KK copies are matched to the
-- documents held for the insurer's IK.

-- A KK copy that reached the insurer on paper and was matched to its document.
ALTER TABLE certificates ADD COLUMN paper_received_at TIMESTAMP;

-- Insurer accounts: users of the role 'insurer' belong to one IK, no practice.
ALTER TABLE users ADD COLUMN insurer_ik TEXT;
ALTER TABLE users DROP CONSTRAINT users_role;
ALTER TABLE users DROP CONSTRAINT users_operator_without_practice;
ALTER TABLE users ADD CONSTRAINT users_role CHECK (role IN ('staff', 'admin', 'operator', 'insurer'));
ALTER TABLE users ADD CONSTRAINT users_practice_roles
    CHECK ((role IN ('staff', 'admin')) = (practice_id IS NOT NULL));
ALTER TABLE users ADD CONSTRAINT users_insurer_ik CHECK ((role = 'insurer') = (insurer_ik IS NOT NULL));

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
