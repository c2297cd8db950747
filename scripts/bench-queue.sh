#!/usr/bin/env bash
# Queue drain benchmark (issues #5, #21): seed N queued certificates on PostgreSQL, drain them into
# the fake insurer with one `au-relay worker` process, and set the drain rate beside the fake
# insurer's raw accept rate measured by wrk in the same run. Then the same N documents (same size,
# new UUIDs) as graphile-worker jobs, drained into the same fake insurer by graphile-worker
# (scripts/graphile-bench/drain.mjs) on the same cluster. For each drain: documents/s, SQL time
# and WAL per document (pg_stat_statements, reset right before the drain; the WAL position before
# and after), the CPU of worker, fake insurer and PostgreSQL, and the worker's peak RSS.
# Prints the figures for BENCHMARKS.md.
#
#   scripts/bench-queue.sh [N]            # default 1000000
#
# Environment: BIN (default target/release/au-relay, built if missing), BENCH_GRAPHILE=0 skips
# graphile-worker, BENCH_WORKERS (default 1: the worker processes of AU-Relay's drain; "1 2"
# drains the N documents once with one worker and again, seeded anew, with two), PG_ADMIN_URL
# (default postgres://postgres@127.0.0.1:5432/postgres).
# pg_stat_statements needs shared_preload_libraries: when the cluster of PG_ADMIN_URL has not
# loaded it (or BENCH_OWN_CLUSTER=1), the benchmark runs on a throwaway cluster of its own
# (initdb + pg_ctl as the postgres user under /tmp, port BENCH_PG_PORT, default 5499; default
# settings, fsync on, plus pg_stat_statements), stopped and removed at the end.
#
# Needs: psql, curl, wrk (Debian package), bc, python3; node and npm for graphile-worker
# (`npm ci` in scripts/graphile-bench when its node_modules is missing).
set -euo pipefail
[ -n "${BIN:-}" ] && BIN=$(realpath -m "$BIN")
cd "$(dirname "$0")/.."
N=${1:-1000000}
ADMIN=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=aurelay_bench
PORT=${BENCH_PORT:-18090}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
GRAPHILE=${BENCH_GRAPHILE:-1}
WORKER_COUNTS=${BENCH_WORKERS:-1}
if [ -z "${BIN:-}" ]; then
  BIN=target/release/au-relay
  [ -x "$BIN" ] || cargo build --release --bin au-relay
fi
[ -x "$BIN" ] || { echo "no executable au-relay at $BIN" >&2; exit 1; }
GDIR=$PWD/scripts/graphile-bench
if [ "$GRAPHILE" != 0 ]; then
  command -v node >/dev/null || { echo "node is missing (BENCH_GRAPHILE=0 skips graphile-worker)" >&2; exit 1; }
  [ -d "$GDIR/node_modules" ] || (cd "$GDIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

pg_bin() { command -v "$1" 2>/dev/null || printf '%s\n' /usr/lib/postgresql/*/bin/"$1" | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

FAKE="" WORKER="" SERVE="" PGDIR=""
cleanup() {
  for p in $WORKER $SERVE $FAKE; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$PGDIR" ]; then
    as_pg "$(pg_bin pg_ctl)" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
  fi
}
trap cleanup EXIT

if [ -n "${BENCH_OWN_CLUSTER:-}" ] || [ "$(psql "$ADMIN" -Atqc \
    "SELECT current_setting('shared_preload_libraries') ~ 'pg_stat_statements'" 2>/dev/null)" != t ]; then
  # Under /tmp, not the checkout: a checkout in /root is out of the postgres user's reach.
  PGDIR=$(mktemp -d /tmp/au-relay-bench-pg.XXXXXX)
  pgport=${BENCH_PG_PORT:-5499}
  [ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
  echo "== pg_stat_statements is not loaded in $ADMIN: a throwaway PostgreSQL cluster in $PGDIR (port $pgport)"
  as_pg "$(pg_bin initdb)" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg "$(pg_bin pg_ctl)" -D "$PGDIR/data" -l "$PGDIR/log" -w -o "-p $pgport -k $PGDIR \
    -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements" start >/dev/null
  ADMIN="postgres://postgres@127.0.0.1:$pgport/postgres"
fi
# Another process busy on the same cores moves every figure: the CPU pressure goes with them.
echo "machine: $(nproc) cores, CPU pressure at the start: $(awk '/^some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo unknown)"
echo "PostgreSQL: $(psql "$ADMIN" -Atqc "SELECT current_setting('server_version') || ', fsync ' || current_setting('fsync')
  || ', shared_buffers ' || current_setting('shared_buffers')") at ${ADMIN%/*}"

psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
URL="${ADMIN%/*}/$DB"
psql "$URL" -qc "CREATE EXTENSION pg_stat_statements" >/dev/null
export AU_RELAY_DATABASE_URL="$URL" AU_RELAY_LOG=warn AU_RELAY_DB_POOL_SIZE=16
# The benchmark's own statements carry this comment and are left out of the SQL time.
q() { psql "$URL" -Atqc "/* bench */ $1"; }

"$BIN" practice add --bsnr 031234567 --name Bench --street S --postal-code 30159 --city Hannover \
  --phone 0 --lanr 838382202 --doctor-name Bench >/dev/null 2>&1
"$BIN" fake-insurer --port "$PORT" 2>/dev/null &
FAKE=$!
sleep 1
"$BIN" destination set --ik 109500969 --name Bench --push-url "http://127.0.0.1:$PORT/eau" \
  --health-url "http://127.0.0.1:$PORT/health" >/dev/null 2>&1

# seed_au: N queued certificates with their eAU deliveries, in an otherwise empty queue.
seed_au() {
echo "== seeding $N queued certificates"
seed_start=$(date +%s.%N)
# A drain before (BENCH_WORKERS) leaves its rows: removed, and the tables rewritten compact.
psql "$URL" -q -v ON_ERROR_STOP=1 <<SQL
DELETE FROM delivery_attempts;
DELETE FROM deliveries;
DELETE FROM certificates;
VACUUM FULL delivery_attempts;
VACUUM FULL deliveries;
VACUUM FULL certificates;
SQL
psql "$URL" -q -v ON_ERROR_STOP=1 -v n="$N" -f scripts/bench-seed.sql
# Vacuumed now, so autovacuum does not take up the fresh rows during a drain.
psql "$URL" -qc "VACUUM ANALYZE"
doc_bytes=$(psql "$URL" -Atqc "SELECT avg(length(fhir_xml))::int FROM certificates")
echo "seeded in $(echo "$(date +%s.%N) - $seed_start" | bc) s, document ${doc_bytes} B"
}
seed_au

echo "== pull export of the whole backlog (one streamed request, limit $N)"
TOKEN=$("$BIN" token create --insurer 109500969 --label bench 2>/dev/null)
SERVE_PORT=${BENCH_SERVE_PORT:-18091}
AU_RELAY_QUEUE=false AU_RELAY_BIND="127.0.0.1:$SERVE_PORT" "$BIN" serve 2>/dev/null &
SERVE=$!
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

# CPU from /proc (clock ticks of user + system time): a process, and the whole cluster (the
# postmaster with the children it has reaped, plus its live children), so the PostgreSQL share
# is this cluster's alone.
CLK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
PM=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
PM=$(awk '{print $4}' "/proc/$PM/stat" 2>/dev/null || true)
pg_ticks() {
  [ -n "$PM" ] || { echo 0; return; }
  local t c
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PM/stat")
  for c in $(pgrep -P "$PM"); do t=$((t + $(ticks "$c"))); done
  echo "$t"
}
pct() { echo "scale=0; 100 * $1 / $CLK / $2" | bc; }

# drain LABEL LEFT_SQL COMMAND…: runs COMMAND as the worker (DRAIN_PROCS processes of it, default
# 1) against the queued N documents and prints the drain's figures (CPU and RSS of the workers
# summed); sets rate, sql_us and wal_b. Progress comes from the fake insurer's
# running totals (a query over the queue every second would cost PostgreSQL CPU during the
# drain); once it has N new documents, LEFT_SQL (what is still open in the queue) is polled
# until 0. Right before the start: a CHECKPOINT (every drain starts with the same full-page-write
# state), the WAL position, and pg_stat_statements reset.
drain() {
  local label=$1 left_sql=$2 log
  shift 2
  log=/tmp/bench-queue.$label.log
  : >"$log"
  local documents_before pushes_before lsn start fake0 pg0 accepted left last last_at now elapsed
  documents_before=$(totals documents)
  pushes_before=$(totals pushes)
  q "DROP TABLE IF EXISTS bench_updates" >/dev/null 2>&1
  q "CREATE TABLE bench_updates AS
     SELECT relname, n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables" >/dev/null
  q "CHECKPOINT" >/dev/null
  lsn=$(q "SELECT pg_current_wal_lsn()")
  q "SELECT pg_stat_statements_reset()" >/dev/null
  fake0=$(ticks "$FAKE")
  pg0=$(pg_ticks)
  start=$(date +%s.%N)
  local i w
  for i in $(seq 1 "${DRAIN_PROCS:-1}"); do
    "$@" >>"$log" 2>&1 &
    WORKER="$WORKER $!"
  done
  local peak=0 rss
  sample_rss() {
    rss=0
    for w in $WORKER; do
      rss=$((rss + $(awk '/VmRSS/ {print $2}' "/proc/$w/status" 2>/dev/null || echo 0)))
      kill -0 "$w" 2>/dev/null || { echo "a worker exited early, see $log" >&2; exit 1; }
    done
    if [ "$rss" -gt "$peak" ]; then peak=$rss; fi
  }
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
    left=$(q "$left_sql")
    sample_rss
    [ "$left" -eq 0 ] && break
    sleep 0.2
  done
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  local worker_ticks fake_ticks pg_cpu wal pushes documents
  worker_ticks=0
  for w in $WORKER; do worker_ticks=$((worker_ticks + $(ticks "$w"))); done
  fake_ticks=$(( $(ticks "$FAKE") - fake0 ))
  pg_cpu="–"
  [ -n "$PM" ] && pg_cpu=$(pct $(( $(pg_ticks) - pg0 )) "$elapsed")
  wal=$(q "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn')::bigint")
  pushes=$(( $(totals pushes) - pushes_before ))
  documents=$(( $(totals documents) - documents_before ))
  rate=$(echo "$N / $elapsed" | bc)
  wal_b=$((wal / N))
  echo "drained $N in ${elapsed} s: ${rate} documents/s = $(echo "scale=2; 100 * $rate / $raw" | bc) % of raw; worker peak RSS $((peak / 1024)) MB; the insurer got $pushes pushes for $documents new documents; $left left in the queue"
  echo "CPU during the drain (100 % = one core): worker $(pct "$worker_ticks" "$elapsed") %, fake insurer $(pct "$fake_ticks" "$elapsed") %, PostgreSQL $pg_cpu %"
  # The drain's statements: this database's, without the benchmark's own (marked /* bench */).
  local drained="WITH s AS (SELECT calls, total_exec_time AS t, wal_bytes AS w, query FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query NOT LIKE '%/* bench */%')"
  sql_us=$(q "$drained SELECT round(sum(t)::numeric * 1000 / $N, 1) FROM s")
  echo "SQL per document: ${sql_us} µs execution time ($(q "$drained SELECT count(*) FROM s") statements, $(q "$drained SELECT sum(calls) FROM s") calls); WAL per document: ${wal_b} B ($((wal / 1048576)) MiB in all)"
  # Grouped by the first 80 characters: a multi-row INSERT is another statement for every row count.
  echo "  top statements (grouped by their first 80 characters): calls, µs per document, WAL B per document, query"
  q "$drained SELECT sum(calls), round(sum(t)::numeric * 1000 / $N, 1), round(sum(w) / $N),
       CASE WHEN count(*) > 1 THEN '(' || count(*) || ' statements) ' ELSE '' END || q
     FROM (SELECT *, left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS q FROM s) g
     GROUP BY q ORDER BY sum(t) DESC LIMIT 8" | while IFS='|' read -r calls us w text; do
    printf '  %9s %7s %6s  %s\n' "$calls" "$us" "$w" "$text"
  done
  for w in $WORKER; do kill "$w" 2>/dev/null || true; done
  for w in $WORKER; do wait "$w" 2>/dev/null || true; done
  WORKER=""
  # Row updates of the drain (a backend reports its counts when it exits): how many were HOT,
  # written into the same page without new index entries.
  sleep 1
  q "SELECT relname || ': ' || (n_tup_upd - coalesce(b.upd, 0)) || ' updates, '
       || (n_tup_hot_upd - coalesce(b.hot, 0)) || ' HOT'
     FROM pg_stat_user_tables t LEFT JOIN bench_updates b USING (relname)
     WHERE n_tup_upd > coalesce(b.upd, 0) ORDER BY relname" | sed 's/^/  rows: /'
  [ -s "$log" ] && sed 's/^/  worker: /' "$log" | tail -5
  return 0
}

au_rate="" scaling=""
for procs in $WORKER_COUNTS; do
  [ -n "$au_rate" ] && seed_au
  echo "== draining with $procs au-relay worker process(es) (concurrency $CONCURRENCY each)"
  DRAIN_PROCS=$procs drain "au-relay-$procs" "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'dead')" \
    env AU_RELAY_QUEUE_CONCURRENCY="$CONCURRENCY" "$BIN" worker
  if [ -z "$au_rate" ]; then
    au_rate=$rate au_sql=$sql_us au_wal=$wal_b au_procs=$procs
  else
    scaling="$scaling; $procs workers: $rate documents/s = $(printf %.2f "$(echo "scale=4; $rate / $au_rate" | bc)")× of $au_procs"
  fi
  # Out of the next drain's window: the dead row versions of this one.
  q "VACUUM ANALYZE" >/dev/null
done
[ -n "$scaling" ] && echo "== scaling${scaling}"

[ "$GRAPHILE" = 0 ] && exit 0

version=$(node -p "require('$GDIR/node_modules/graphile-worker/package.json').version")
echo "== graphile-worker $version: seeding $N jobs (graphile_worker.add_jobs, 10 000 a call)"
DATABASE_URL="$URL" node "$GDIR/drain.mjs" migrate
seed_start=$(date +%s.%N)
# The same document as above (its own UUID in it), in the payload: {"id": uuid, "xml": document}.
psql "$URL" -q <<SQL
DO \$\$
BEGIN
  FOR i IN 0 .. ($N - 1) / 10000 LOOP
    PERFORM graphile_worker.add_jobs(array(
      SELECT ('push', json_build_object('id', g.id, 'xml',
          '<Bundle xmlns="http://hl7.org/fhir"><identifier><value value="urn:uuid:' || g.id || '"/></identifier>'
          || repeat('<entry><fullUrl value="http://pvs.praxis.local/fhir/Condition/x"/></entry>', 25) || '</Bundle>'),
        null, null, null, null, null, null)::graphile_worker.job_spec
      FROM (SELECT gen_random_uuid()::text AS id
            FROM generate_series(i * 10000 + 1, least((i + 1) * 10000, $N))) g));
  END LOOP;
END
\$\$;
SQL
psql "$URL" -qc "VACUUM ANALYZE"
echo "seeded in $(echo "$(date +%s.%N) - $seed_start" | bc) s: $(q "SELECT count(*) FROM graphile_worker._private_jobs") jobs, document $(q "SELECT avg(length(payload->>'xml'))::int FROM graphile_worker._private_jobs") B, payload $(q "SELECT avg(length(payload::text))::int FROM graphile_worker._private_jobs") B"

echo "== draining with one graphile-worker process (concurrency $CONCURRENCY, localQueue 500, completeJobBatchDelay 0, failJobBatchDelay 0, pool $((CONCURRENCY + 2)))"
drain graphile "SELECT count(*) FROM graphile_worker._private_jobs" \
  env DATABASE_URL="$URL" INSURER_URL="http://127.0.0.1:$PORT/eau" CONCURRENCY="$CONCURRENCY" node "$GDIR/drain.mjs"
echo "== summary"
echo "AU-Relay ($au_procs worker) $au_rate documents/s vs graphile-worker $rate documents/s = $(printf %.2f "$(echo "scale=4; $au_rate / $rate" | bc)")×;" \
  "SQL per document $au_sql µs vs $sql_us µs; WAL per document $au_wal B vs $wal_b B"
