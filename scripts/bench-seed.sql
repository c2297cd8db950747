-- The benchmarks' backlog (scripts/bench-queue.sh, scripts/bench-pull.sh): :n queued certificates of
-- the practice and insurer 109500969, each with a ~2 KB FHIR document and its eAU delivery due now.
-- Run with `psql -v n=N -f scripts/bench-seed.sql` on a migrated database with one practice.
INSERT INTO certificates (id, practice_id, kind, kvnr, search_name, display_name, insurer_ik, determined_on,
    incapable_until, document, created_by, created_at, origin, fhir_xml, print_only)
SELECT g.id, p.id, 'ERST', 'A123456780', 'bench', 'Bench, Bench', '109500969', current_date, current_date + 3,
    '{}', 'bench', (now() at time zone 'utc') + (g.n || ' microseconds')::interval, 'capture',
    '<Bundle xmlns="http://hl7.org/fhir"><identifier><value value="urn:uuid:' || g.id || '"/></identifier>'
      || repeat('<entry><fullUrl value="http://pvs.praxis.local/fhir/Condition/x"/></entry>', 25) || '</Bundle>',
    false
FROM (SELECT n, gen_random_uuid()::text AS id FROM generate_series(1, :n) n) g, practices p;
-- Delivery ids as AU-Relay makes them: UUIDv7 (48 bits of milliseconds, here of the capture time,
-- version 7, random).
INSERT INTO deliveries (id, certificate_id, practice_id, insurer_ik, document_kind, state, attempts,
    next_attempt_at, created_at)
SELECT overlay(overlay(md5(random()::text || c.id)
         placing lpad(to_hex((extract(epoch from c.created_at) * 1000)::bigint), 12, '0') from 1 for 12)
         placing '7' from 13 for 1)::uuid::text,
    c.id, c.practice_id, c.insurer_ik, 'eau', 'pending', 0, c.created_at, c.created_at
FROM certificates c;
