-- Practice API tokens: last use and revocation.
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN revoked_at TIMESTAMP;
