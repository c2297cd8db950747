#!/usr/bin/env bash
# Insurer pull-and-acknowledge benchmark (issue #21): seed N queued certificates on PostgreSQL
# (as scripts/bench-queue.sh does), then drain them as an insurer's import would: pages of
# PAGE documents from `GET /api/insurer/v1/documents`, each page acknowledged with
# `POST /api/insurer/v1/acknowledgements` before the next is fetched. Prints documents/s, the
# time split between the two calls, and checks that every document was acknowledged once
# (one `acknowledged` attempt row each, none left open).
#
#   scripts/bench-pull.sh [N] [PAGE]        # default 200000 and 1000
#
# Needs: PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), psql, python3;
# BIN (default target/release/au-relay, built if missing).
set -euo pipefail
[ -n "${BIN:-}" ] && BIN=$(realpath -m "$BIN")
cd "$(dirname "$0")/.."
N=${1:-200000}
PAGE=${2:-1000}
ADMIN=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=aurelay_bench_pull
PORT=${BENCH_SERVE_PORT:-18092}
if [ -z "${BIN:-}" ]; then
  BIN=target/release/au-relay
  [ -x "$BIN" ] || cargo build --release --bin au-relay
fi

psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
URL="${ADMIN%/*}/$DB"
export AU_RELAY_DATABASE_URL="$URL" AU_RELAY_LOG=warn AU_RELAY_DB_POOL_SIZE=16
SERVE=""
trap 'kill ${SERVE:-} 2>/dev/null || true; psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT

"$BIN" practice add --bsnr 031234567 --name Bench --street S --postal-code 30159 --city Hannover \
  --phone 0 --lanr 838382202 --doctor-name Bench >/dev/null 2>&1
TOKEN=$("$BIN" token create --insurer 109500969 --label bench 2>/dev/null)

echo "== seeding $N queued certificates"
psql "$URL" -q -v ON_ERROR_STOP=1 -v n="$N" -f scripts/bench-seed.sql
psql "$URL" -qc "ANALYZE"

AU_RELAY_QUEUE=false AU_RELAY_BIND="127.0.0.1:$PORT" "$BIN" serve 2>/dev/null &
SERVE=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

echo "== pull and acknowledge in pages of $PAGE"
python3 - "http://127.0.0.1:$PORT" "$TOKEN" "$PAGE" "$N" <<'PY'
import http.client, json, sys, time, urllib.parse
base, token, page, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(host.hostname, host.port)
auth = {"Authorization": f"Bearer {token}"}
done = pull_s = ack_s = 0.0
start = time.time()
while True:
    t = time.time()
    conn.request("GET", f"/api/insurer/v1/documents?limit={page}", headers=auth)
    body = json.loads(conn.getresponse().read())
    pull_s += time.time() - t
    ids = [item["id"] for item in body["items"]]
    if not ids:
        break
    t = time.time()
    conn.request("POST", "/api/insurer/v1/acknowledgements", body=json.dumps({"ids": ids}),
                 headers={**auth, "Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    ack_s += time.time() - t
    assert answer["acknowledged"] == len(ids), answer
    done += len(ids)
total = time.time() - start
print(f"pulled and acknowledged {int(done)} of {n} in {total:.1f} s = {done/total:.0f} documents/s "
      f"(GET {pull_s:.1f} s, POST {ack_s:.1f} s)")
PY
psql "$URL" -Atqc "SELECT 'open deliveries left: ' || count(*) FILTER (WHERE state <> 'delivered')
  || ', attempt rows: ' || (SELECT count(*) FROM delivery_attempts WHERE outcome = 'acknowledged') FROM deliveries"
