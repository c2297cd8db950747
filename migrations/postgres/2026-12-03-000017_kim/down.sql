DROP TABLE kim_inbox;
DROP TABLE kim_messages;
DROP TABLE kim_accounts;
ALTER TABLE destinations DROP COLUMN kim_source;
ALTER TABLE destinations DROP COLUMN kim_address;
