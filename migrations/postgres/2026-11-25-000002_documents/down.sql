ALTER TABLE certificates DROP COLUMN print_only;
ALTER TABLE certificates DROP COLUMN fhir_sha256;
ALTER TABLE certificates DROP COLUMN fhir_xml;
ALTER TABLE certificates DROP COLUMN origin;
