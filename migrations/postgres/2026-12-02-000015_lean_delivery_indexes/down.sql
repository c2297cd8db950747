CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_insurer ON deliveries (insurer_ik, state);
