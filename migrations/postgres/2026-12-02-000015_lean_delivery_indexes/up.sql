-- Every state change of a delivery is a new row version in PostgreSQL, with a new entry in every
-- index of the table (the state is indexed, so no update is HOT): during a drain each document
-- is updated twice (claimed, delivered). Two of the six indexes only repeated others:
--   deliveries_due (state, next_attempt_at): every query on the state also names the channel
--     (deliveries_channel_due) or the insurer (deliveries_open_by_insurer);
--   deliveries_by_insurer (insurer_ik, state): the insurer's open deliveries are in
--     deliveries_open_by_insurer, whose predicate the queries by insurer imply.
DROP INDEX deliveries_due;
DROP INDEX deliveries_by_insurer;
