DROP INDEX deliveries_by_document;
