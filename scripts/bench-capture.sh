#!/usr/bin/env bash
# Capture load benchmark (issue #8): `POST /api/v1/certificates` (JSON, bearer demo-token, a
# valid certificate, no Idempotency-Key) under wrk with 64 connections, beside the raw
# single-row commit rate of the same database measured in the same run:
#   SQLite      python3/sqlite3, one connection, WAL + synchronous=NORMAL (the app's pragmas),
#               one INSERT + COMMIT per row
#   PostgreSQL  pgbench, a one-row INSERT per transaction, at the app's pool size and at 64 clients
# Prints requests/s, p50/p99 latency, the raw rate and the share of raw, per backend.
#
#   scripts/bench-capture.sh [SECONDS]        # default 20 per measurement; BACKENDS="sqlite postgres"
#
# Release build. The server runs with the queue workers off (AU_RELAY_QUEUE=false) so only the
# capture path is measured. PostgreSQL: PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres,
# trust auth); the script creates and drops its own database. Needs wrk, pgbench, psql, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
BACKENDS=${BACKENDS:-"sqlite postgres"}
ADMIN=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
POOL=${AU_RELAY_DB_POOL_SIZE:-8}
PGDB=aurelay_bench_capture
BIN=${AU_RELAY_BIN:-target/release/au-relay}
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $PGDB" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[ -n "${AU_RELAY_BIN:-}" ] || cargo build --quiet --release --bin au-relay

# The body of tests/it/common/mod.rs valid_body(), dated today in Germany.
today=$(TZ=Europe/Berlin date +%F)
since=$(TZ=Europe/Berlin date -d "$today -1 day" +%F)
until=$(TZ=Europe/Berlin date -d "$today +3 day" +%F)
body="{\"kind\":\"ERST\",\"patient\":{\"kvnr\":\"A123456780\",\"first_name\":\"Jürgen\",\"last_name\":\"Müller-Lüdenscheidt\",\"birth_date\":\"1980-04-01\",\"street\":\"Straße\",\"house_number\":\"5\",\"postal_code\":\"30159\",\"city\":\"Hannover\"},\"insurer\":{\"ik\":\"109500969\",\"name\":\"AOK Niedersachsen\",\"insured_type\":\"1\"},\"period\":{\"since\":\"$since\",\"until\":\"$until\",\"determined_on\":\"$today\"},\"diagnoses\":[{\"code\":\"J06.9\",\"certainty\":\"G\"}]}"
cat > "$work/capture.lua" <<LUA
wrk.method = "POST"
wrk.path = "/api/v1/certificates"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer demo-token"
wrk.body = [[$body]]
LUA

. scripts/lib-demo-server.sh
start_server() { # $1 = database URL
  AU_RELAY_DATABASE_URL="$1" AU_RELAY_QUEUE=false AU_RELAY_LOG=warn,au_relay=info AU_RELAY_DB_POOL_SIZE=$POOL \
    start_demo_server "$BIN" "$work/server.log"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer demo-token' --data "$body" "$base/api/v1/certificates")
  [ "$code" = 201 ] || { echo "warm-up request answered $code" >&2; exit 1; }
}

stop_server() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}

run_wrk() { # prints "rps p50_ms p99_ms non2xx"
  wrk -t2 -c64 -d"${SECS}s" --latency -s "$work/capture.lua" "$base" >"$work/wrk.txt"
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad }' "$work/wrk.txt"
}

results=()
report() { # backend rps p50 p99 bad raw raw_label
  share=$(echo "scale=1; 100 * $2 / $6" | bc)
  results+=("$(printf '%-10s %7s req/s  p50 %6s ms  p99 %7s ms  non-2xx %s  raw %7s commits/s (%s)  share %5s %%' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$share")")
  echo "${results[-1]}"
}

payload_bytes=3000

for backend in $BACKENDS; do
  case $backend in
  sqlite)
    echo "== SQLite: raw single-row commits (python3 sqlite3 $(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)'), ${SECS} s)"
    raw=$(python3 - "$work/raw.db" "$SECS" "$payload_bytes" <<'PY'
import sqlite3, sys, time
path, secs, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path, isolation_level=None)
for p in ("busy_timeout = 10000", "journal_mode = WAL", "foreign_keys = ON", "synchronous = NORMAL"):
    db.execute("PRAGMA " + p)
db.execute("CREATE TABLE raw_commit (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
payload = "x" * size
n, end = 0, time.monotonic() + secs
start = time.monotonic()
while time.monotonic() < end:
    db.execute("BEGIN")
    db.execute("INSERT INTO raw_commit (payload) VALUES (?)", (payload,))
    db.execute("COMMIT")
    n += 1
print(round(n / (time.monotonic() - start)))
PY
)
    echo "raw: $raw commits/s"
    echo "== SQLite: capture API under wrk (64 connections, ${SECS} s)"
    start_server "$work/bench.db"
    read -r rps p50 p99 bad < <(run_wrk)
    stop_server
    report sqlite "$rps" "$p50" "$p99" "$bad" "$raw" "1 connection"
    ;;
  postgres)
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $PGDB" >/dev/null
    psql "$ADMIN" -qc "CREATE DATABASE $PGDB" >/dev/null
    url="${ADMIN%/*}/$PGDB"
    psql "$url" -qc "CREATE TABLE raw_commit (id bigserial PRIMARY KEY, payload text NOT NULL)"
    echo "INSERT INTO raw_commit (payload) VALUES (repeat('x', $payload_bytes));" > "$work/insert.sql"
    raw_at() { pgbench -n -c "$1" -j 2 -T "$SECS" -f "$work/insert.sql" "$url" 2>/dev/null \
      | awk '/^tps/ { printf "%.0f\n", $3 }'; }
    echo "== PostgreSQL $(psql "$ADMIN" -Atqc 'SHOW server_version'): raw single-row commits (pgbench, ${SECS} s each)"
    raw_pool=$(raw_at "$POOL")
    raw_64=$(raw_at 64)
    echo "raw: $raw_pool commits/s at $POOL clients, $raw_64 at 64 clients"
    if [ "$raw_64" -gt "$raw_pool" ]; then raw=$raw_64 label="pgbench 64 clients"; else raw=$raw_pool label="pgbench $POOL clients"; fi
    echo "== PostgreSQL: capture API under wrk (64 connections, pool $POOL, ${SECS} s)"
    start_server "$url"
    read -r rps p50 p99 bad < <(run_wrk)
    stop_server
    report postgres "$rps" "$p50" "$p99" "$bad" "$raw" "$label"
    ;;
  *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
done

echo "== summary ($(date -u +%F), $(nproc) vCPU, cpu pressure: $(awk '/some/ {print $2}' /proc/pressure/cpu))"
printf '%s\n' "${results[@]}"
echo "goal: >= 50 % of raw, p99 < 20 ms"
