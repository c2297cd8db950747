DROP INDEX deliveries_claim_order;
