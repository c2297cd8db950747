#!/usr/bin/env bash
# Queue drain benchmark (issue #5): seed N queued certificates on PostgreSQL, drain them into the
# fake insurer with one `au-relay worker` process, and set the drain rate beside the fake insurer's
# raw accept rate measured by wrk in the same run. Prints the figures for BENCHMARKS.md.
#
#   scripts/bench-queue.sh [N]            # default 1000000
#
# Needs: a PostgreSQL admin URL in PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# psql, curl, wrk (Debian package), and builds target/release/au-relay if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
ADMIN=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=aurelay_bench
BIN=target/release/au-relay
PORT=${BENCH_PORT:-18090}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
[ -x "$BIN" ] || cargo build --release --bin au-relay

psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
URL="${ADMIN%/*}/$DB"
export AU_RELAY_DATABASE_URL="$URL" AU_RELAY_LOG=warn AU_RELAY_DB_POOL_SIZE=16

"$BIN" practice add --bsnr 031234567 --name Bench --street S --postal-code 30159 --city Hannover \
  --phone 0 --lanr 838382202 --doctor-name Bench >/dev/null 2>&1
"$BIN" fake-insurer --port "$PORT" 2>/dev/null &
FAKE=$!
WORKER=""
trap 'kill $FAKE ${WORKER:-} ${SERVE:-} 2>/dev/null || true' EXIT
sleep 1
"$BIN" destination set --ik 109500969 --name Bench --push-url "http://127.0.0.1:$PORT/eau" \
  --health-url "http://127.0.0.1:$PORT/health" >/dev/null 2>&1

echo "== seeding $N queued certificates"
seed_start=$(date +%s.%N)
psql "$URL" -q <<SQL
INSERT INTO certificates (id, practice_id, kind, kvnr, search_name, display_name, insurer_ik, determined_on,
    incapable_until, document, created_by, created_at, origin, fhir_xml, print_only)
SELECT g.id, p.id, 'ERST', 'A123456780', 'bench', 'Bench, Bench', '109500969', current_date, current_date + 3,
    '{}', 'bench', (now() at time zone 'utc') + (g.n || ' microseconds')::interval, 'capture',
    '<Bundle xmlns="http://hl7.org/fhir"><identifier><value value="urn:uuid:' || g.id || '"/></identifier>'
      || repeat('<entry><fullUrl value="http://pvs.praxis.local/fhir/Condition/x"/></entry>', 25) || '</Bundle>',
    false
FROM (SELECT n, gen_random_uuid()::text AS id FROM generate_series(1, $N) n) g, practices p;
INSERT INTO deliveries (id, certificate_id, practice_id, insurer_ik, document_kind, state, attempts,
    next_attempt_at, created_at)
SELECT gen_random_uuid()::text, c.id, c.practice_id, c.insurer_ik, 'eau', 'pending', 0, c.created_at, c.created_at
FROM certificates c;
ANALYZE;
SQL
doc_bytes=$(psql "$URL" -Atqc "SELECT avg(length(fhir_xml))::int FROM certificates")
echo "seeded in $(echo "$(date +%s.%N) - $seed_start" | bc) s, document ${doc_bytes} B"

echo "== pull export of the whole backlog (one streamed request, limit $N)"
TOKEN=$("$BIN" token create --insurer 109500969 --label bench 2>/dev/null)
SERVE_PORT=${BENCH_SERVE_PORT:-18091}
AU_RELAY_QUEUE=false AU_RELAY_BIND="127.0.0.1:$SERVE_PORT" "$BIN" serve 2>/dev/null &
SERVE=$!
trap 'kill $FAKE ${WORKER:-} ${SERVE:-} 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$SERVE_PORT/healthz" >/dev/null && break; sleep 0.2; done
export_peak=0
curl -fs -H "Authorization: Bearer $TOKEN" -o /tmp/bench-export.json \
  -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$SERVE_PORT/api/insurer/v1/documents?limit=$N" \
  > /tmp/bench-export.out &
CURL=$!
while kill -0 $CURL 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$SERVE/status 2>/dev/null || echo 0)
  [ "$rss" -gt "$export_peak" ] && export_peak=$rss
  sleep 0.5
done
read -r export_bytes export_secs < /tmp/bench-export.out
# One JSON line of ~2 GB: count the items in chunks (grep would need the whole line in memory).
items=$(python3 -c '
import sys
n, prev = 0, b""
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 24):
        both = prev + chunk
        n += both.count(b"\"id\":")
        prev = both[-4:]
print(n)' /tmp/bench-export.json)
echo "export: $items documents, $((export_bytes / 1048576)) MiB in ${export_secs} s; server peak RSS $((export_peak / 1024)) MB"
rm -f /tmp/bench-export.json
kill $SERVE 2>/dev/null || true
wait $SERVE 2>/dev/null || true
SERVE=""

echo "== raw accept rate of the fake insurer (wrk, 64 connections, 10 s)"
body=$(printf 'x%.0s' $(seq 1 "$doc_bytes"))
cat > /tmp/bench-queue.lua <<LUA
counter = 0
wrk.method = "POST"
wrk.body = "$body"
request = function()
  counter = counter + 1
  return wrk.format(nil, "/eau", {["Idempotency-Key"] = "wrk-" .. counter .. "-" .. math.random(1, 1e9),
    ["Content-Type"] = "application/fhir+xml"})
end
LUA
raw=$(wrk -t2 -c64 -d10s -s /tmp/bench-queue.lua "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ {print $2}')
echo "raw: ${raw} requests/s"

totals() { curl -fs "http://127.0.0.1:$PORT/control/totals" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# The totals include wrk's pushes: the drain's are counted from here.
documents_before=$(totals documents)
pushes_before=$(totals pushes)
echo "== draining with one worker (concurrency $CONCURRENCY)"
AU_RELAY_QUEUE_CONCURRENCY=$CONCURRENCY "$BIN" worker 2>/dev/null &
WORKER=$!
# Where the CPU goes during the drain (sysstat's pidstat, if installed): worker, fake insurer and
# the PostgreSQL backends, averaged over the drain.
PIDSTAT=""
if command -v pidstat >/dev/null; then
  pidstat -u -C 'au-relay|postgres' 1 >/tmp/bench-queue.pidstat 2>&1 &
  PIDSTAT=$!
fi
start=$(date +%s.%N)
peak=0
sample_rss() {
  rss=$(awk '/VmRSS/ {print $2}' /proc/$WORKER/status 2>/dev/null || echo 0)
  [ "$rss" -gt "$peak" ] && peak=$rss
  return 0
}
# Progress from the fake insurer's running totals (a query over the queue every second would cost
# PostgreSQL CPU during the drain); the last answers are then waited for in the database, where
# few rows are still open by then.
last=0 last_at=$(date +%s)
while :; do
  accepted=$(( $(totals documents) - documents_before ))
  sample_rss
  [ "$accepted" -ge "$N" ] && break
  now=$(date +%s)
  if [ $((now - last_at)) -ge 30 ]; then
    echo "  $(echo "$now - $start" | bc | cut -d. -f1) s: $accepted accepted, $(( (accepted - last) / (now - last_at) ))/s in the last $((now - last_at)) s"
    last=$accepted last_at=$now
  fi
  sleep 1
done
while :; do
  left=$(psql "$URL" -Atqc "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'in_flight', 'dead')")
  sample_rss
  [ "$left" -eq 0 ] && break
  sleep 0.2
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
if [ -n "$PIDSTAT" ]; then
  kill -INT "$PIDSTAT" 2>/dev/null || true
  wait "$PIDSTAT" 2>/dev/null || true
  awk -v w="$WORKER" -v f="$FAKE" '/^Average/ && $3 ~ /^[0-9]+$/ {
      who = ($3 == w) ? "worker" : ($3 == f) ? "fake insurer" : ($NF == "postgres") ? "postgres" : ""
      if (who != "") cpu[who] += $(NF-2) }
    END { printf "CPU during the drain (100 %% = one core): worker %.0f %%, fake insurer %.0f %%, PostgreSQL %.0f %%\n",
      cpu["worker"], cpu["fake insurer"], cpu["postgres"] }' /tmp/bench-queue.pidstat
fi
rate=$(echo "$N / $elapsed" | bc)
pushes=$(( $(totals pushes) - pushes_before ))
echo "drained $N in ${elapsed} s: ${rate} documents/s = $(echo "scale=2; 100 * $rate / $raw" | bc) % of raw; worker peak RSS $((peak / 1024)) MB; the insurer got $pushes pushes for $N documents"
