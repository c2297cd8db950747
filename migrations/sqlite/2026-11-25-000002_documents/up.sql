-- The KBV eAU XML document of each certificate: written at capture, or the exact bytes an
-- import received. Replay and pull export send these bytes unchanged.
ALTER TABLE certificates ADD COLUMN origin TEXT NOT NULL DEFAULT 'capture';
ALTER TABLE certificates ADD COLUMN fhir_xml TEXT;
ALTER TABLE certificates ADD COLUMN fhir_sha256 TEXT;
ALTER TABLE certificates ADD COLUMN print_only BOOLEAN NOT NULL DEFAULT FALSE;
