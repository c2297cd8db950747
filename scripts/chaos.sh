#!/usr/bin/env bash
# Chaos run on PostgreSQL (issue #8), about 3–5 minutes, at most CHAOS_MAX_SECS (default 600):
# capture load through the JSON API (scripts/chaos-load.py: 16 clients, each certificate with its
# own Idempotency-Key, retried with that key until acknowledged) while
#   (a) the server process (web + queue worker) is SIGKILLed and restarted CHAOS_KILLS times
#       while it replays to the fake insurer (slow mode, so pushes are in flight when it dies),
#   (b) PostgreSQL is restarted (`pg_ctl restart -m immediate`, a crash) CHAOS_PG_RESTARTS times,
#   (c) the SMTP server (aiosmtpd) goes down for CHAOS_SMTP_DOWN_SECS and comes back, while every
#       certificate asks for its patient mail,
# then lets the queue drain and prints: certificates acknowledged (201 / 200 on a retry), in the
# database, delivered (per-UUID counts of the fake insurer), lost (acknowledged but not in the
# database or not delivered: must be 0), mails received per certificate (missing and sent twice
# with different Message-IDs: must be 0) and every duplicate with its explanation.
# Exit status 1 if anything was lost.
#
#   scripts/chaos.sh
#
# Uses a throwaway cluster of its own under /tmp/au-relay-chaos (initdb/pg_ctl, like scripts/test), so
# it can crash it freely, and a release build (or the binary in AU_RELAY_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${CHAOS_KILLS:-6}
PG_RESTARTS=${CHAOS_PG_RESTARTS:-4}
MAX_SECS=${CHAOS_MAX_SECS:-600}
CLIENTS=${CHAOS_CLIENTS:-16}
PGPORT=${CHAOS_PG_PORT:-55433}
FAKE_PORT=${CHAOS_FAKE_PORT:-18191}
SMTP_PORT=${CHAOS_SMTP_PORT:-18192}
SMTP_DOWN=${CHAOS_SMTP_DOWN_SECS:-15}
PORT=${CHAOS_PORT:-18190}
BIN=${AU_RELAY_BIN:-$PWD/target/release/au-relay}
# Under /tmp, where the postgres user can reach it wherever the checkout is.
dir=${CHAOS_DIR:-/tmp/au-relay-chaos}
SECONDS=0

pg_bin() { command -v "$1" 2>/dev/null || ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_ctl_() { as_pg "$(pg_bin pg_ctl)" -D "$dir/data" -l "$dir/pg.log" -w "$@" >/dev/null; }
log() { printf '[%4d s] %s\n' "$SECONDS" "$*"; }

server="" fake="" load="" smtp=""
cleanup() {
  touch "$dir/stop" 2>/dev/null || true
  for p in $load $server $fake $smtp; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_ctl_ -m immediate stop 2>/dev/null || true
}
trap cleanup EXIT

[ -n "${AU_RELAY_BIN:-}" ] || cargo build --quiet --release --bin au-relay

rm -rf "$dir" && mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
as_pg "$(pg_bin initdb)" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
start_pg() { pg_ctl_ -o "-p $PGPORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start; }
start_pg
psql "postgres://postgres@127.0.0.1:$PGPORT/postgres" -qc "CREATE DATABASE aurelay_chaos"
export AU_RELAY_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/aurelay_chaos"
export AU_RELAY_LOG=warn,au_relay=info AU_RELAY_QUEUE_LEASE_SECS=10 AU_RELAY_PUSH_TIMEOUT_SECS=5
db() { psql "$AU_RELAY_DATABASE_URL" -Atqc "$1"; }

"$BIN" practice add --bsnr 031234567 --name "Praxis Chaos" --street "Hauptstraße 1" --postal-code 30159 \
  --city Hannover --phone 0 --lanr 838382202 --doctor-name "Dr. Chaos" >/dev/null 2>>"$dir/cli.log"
token=$("$BIN" token create --bsnr 031234567 --label chaos 2>>"$dir/cli.log")
"$BIN" fake-insurer --port "$FAKE_PORT" >"$dir/fake.log" 2>&1 &
fake=$!
"$BIN" destination set --ik 109500969 --name "AOK (fake)" --push-url "http://127.0.0.1:$FAKE_PORT/eau" \
  --health-url "http://127.0.0.1:$FAKE_PORT/health" >/dev/null 2>>"$dir/cli.log"
mode() { curl -fsS -X PUT --data "$1" "http://127.0.0.1:$FAKE_PORT/control/mode"; }

# A real SMTP server writing every accepted message into a Maildir.
# A python3 that has aiosmtpd (Debian's, when another python3 comes first on PATH).
PY=${AU_RELAY_TEST_PYTHON:-python3}
if ! "$PY" -c "import aiosmtpd" 2>/dev/null && /usr/bin/python3 -c "import aiosmtpd" 2>/dev/null; then
  PY=/usr/bin/python3
fi
start_smtp() {
  "$PY" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$dir/Maildir" \
    >>"$dir/smtp.log" 2>&1 &
  smtp=$!
}
start_smtp
export AU_RELAY_SMTP_HOST=127.0.0.1 AU_RELAY_SMTP_PORT=$SMTP_PORT AU_RELAY_SMTP_TLS=none \
  AU_RELAY_MAIL_FROM="Praxis Chaos <praxis@example.de>" AU_RELAY_SMTP_TIMEOUT_SECS=5

start_server() {
  "$BIN" serve --bind "127.0.0.1:$PORT" >>"$dir/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "server did not come up"; tail -20 "$dir/server.log"; exit 1
}
start_server

log "capture load: $CLIENTS clients"
"$PY" scripts/chaos-load.py "http://127.0.0.1:$PORT" "$token" "$CLIENTS" "$dir/acks" "$dir/stop" \
  >"$dir/load.json" 2>"$dir/load.err" &
load=$!

# (a) SIGKILL the server/worker while it replays.
mode slow:150
for i in $(seq 1 "$KILLS"); do
  sleep $((4 + RANDOM % 4))
  inflight=$(db "SELECT count(*) FROM deliveries WHERE state = 'pending' AND lease_until IS NOT NULL")
  kill -9 "$server"; wait "$server" 2>/dev/null || true
  log "(a) kill -9 server #$i ($inflight deliveries in flight)"
  sleep 1
  start_server
done

# (b) crash-restart PostgreSQL under capture load.
mode up
for i in $(seq 1 "$PG_RESTARTS"); do
  sleep $((4 + RANDOM % 4))
  pg_ctl_ -m immediate stop
  log "(b) PostgreSQL crashed (immediate stop) #$i"
  sleep 2
  start_pg
  log "(b) PostgreSQL back"
done

# (c) SMTP down and back under capture load: the mails wait and go out once.
kill "$smtp"; wait "$smtp" 2>/dev/null || true
log "(c) SMTP server down for $SMTP_DOWN s"
sleep "$SMTP_DOWN"
start_smtp
log "(c) SMTP server back"

sleep 3
touch "$dir/stop"
wait "$load" || true
load=""
log "load stopped: $(cat "$dir/load.json")"

log "draining the queue and the mails (up to 300 s; a mail retries after about a minute)"
for _ in $(seq 1 150); do
  left=$(db "SELECT count(*) FROM deliveries WHERE state <> 'delivered'")
  [ "$left" = 0 ] && break
  [ "$SECONDS" -lt "$MAX_SECS" ] || break
  sleep 2
done
log "undelivered deliveries left: $left"

db "SELECT id FROM certificates" >"$dir/db-ids"
curl -fsS "http://127.0.0.1:$FAKE_PORT/control/counts" >"$dir/counts.json"
"$PY" - "$dir" "$KILLS" "$PG_RESTARTS" "$SECONDS" <<'PY'
import email.parser, json, os, sys
d, kills, restarts, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
acks = [l.split() for l in open(f"{d}/acks") if l.strip()]
status = {}
for st, doc, key in acks:
    status.setdefault(doc, []).append(st)
acked = set(status)
in_db = {l.strip() for l in open(f"{d}/db-ids") if l.strip()}
counts = json.load(open(f"{d}/counts.json"))
delivered = {k for k, n in counts.items() if n >= 1}
load = json.load(open(f"{d}/load.json"))
lost_db = sorted(acked - in_db)
lost_delivery = sorted(acked - delivered)
twice_acked = {k: v for k, v in status.items() if len(v) > 1}
repushed = {k: n for k, n in counts.items() if n > 1}
orphans = sorted(in_db - acked)
unknown = sorted(delivered - in_db)
print("== chaos summary")
print(f"faults: {kills} x kill -9 of server+worker during replay, {restarts} x PostgreSQL crash-restart; {secs} s")
print(f"requests: {load['201']} x 201, {load['200']} x 200 (retry of a committed request whose answer was lost), "
      f"{load['retries']} retries after {load['connection_errors']} connection errors and {load['http_5xx']} 5xx, "
      f"{load['other']} other answers, {load['unacknowledged']} never acknowledged (run ended)")
print(f"certificates acknowledged: {len(acked)}")
print(f"certificates in DB:        {len(in_db)}")
print(f"delivered (fake insurer):  {len(delivered & acked)} of the acknowledged, {len(delivered)} in all")
print(f"LOST: {len(lost_db)} acknowledged but not in DB, {len(lost_delivery)} acknowledged but not delivered")
for x in (lost_db + lost_delivery)[:10]:
    print(f"  lost {x}")
print(f"duplicates: {len(twice_acked)} certificates acknowledged twice (must be 0)")
print(f"  {len(repushed)} documents pushed more than once ({sum(repushed.values()) - len(repushed)} extra pushes): "
      "the worker died or lost the database between the insurer's 201 and marking the delivery; after the lease "
      "the document was pushed again with the same Idempotency-Key (bundle UUID) and the insurer answered 409 "
      "(KBV KP5-06), so the insurer holds each document once")
print(f"  {len(orphans)} certificates in DB never acknowledged: committed, but the answer was lost and the client "
      "stopped before its retry (a retry with the same Idempotency-Key returns them with 200); delivered: "
      f"{len(set(orphans) & delivered)}")
print(f"  {len(unknown)} delivered documents unknown to the DB (must be 0)")
# Patient mails: chaos-load.py asks for one per certificate, to <certificate number>@example.de.
mails = {}
maildir = f"{d}/Maildir/new"
for name in (os.listdir(maildir) if os.path.isdir(maildir) else []):
    with open(f"{maildir}/{name}", "rb") as f:
        m = email.parser.BytesHeaderParser().parse(f)
    to = str(m["To"]).strip().strip("<>").split("@")[0]
    mails.setdefault(to, []).append(m["Message-ID"])
wanted = {key for _, _, key in acks}
missing = sorted(wanted - set(mails))
resent = {to: ids for to, ids in mails.items() if len(ids) > len(set(ids))}
twice = {to: ids for to, ids in mails.items() if len(set(ids)) > 1}
print(f"mails: {sum(len(v) for v in mails.values())} received for {len(mails)} certificates; "
      f"{len(missing)} acknowledged certificates without their mail (must be 0); "
      f"{len(twice)} sent twice as different mails (must be 0); {len(resent)} delivered again with the same "
      "Message-ID (the worker was killed, or the database was away, between the SMTP server's 250 and recording it; recognisable as one mail)")
sys.exit(1 if lost_db or lost_delivery or twice_acked or unknown or missing or twice else 0)
PY
