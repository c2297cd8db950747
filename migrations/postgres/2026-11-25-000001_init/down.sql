DROP TABLE audit_log;
DROP TABLE certificates;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE doctors;
DROP TABLE practices;
