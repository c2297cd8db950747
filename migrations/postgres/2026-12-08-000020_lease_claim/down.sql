ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_delivery_id_fkey
    FOREIGN KEY (delivery_id) REFERENCES deliveries(id);
UPDATE deliveries SET state = 'in_flight' WHERE state = 'pending' AND lease_until IS NOT NULL;
ALTER TABLE deliveries RESET (fillfactor);
