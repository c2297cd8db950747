# Sourced by scripts/e2e.sh, bench-capture.sh and schemathesis.sh: starts `au-relay serve --demo`
# on a free port and waits until it logs its address.
#
#   start_demo_server BIN LOG [extra serve flags]    # sets $server (pid) and $base (http://127.0.0.1:PORT)
# The database comes from AU_RELAY_DATABASE_URL. The address is read from the info line
# "AU-Relay at http://…", so AU_RELAY_LOG must keep `au_relay=info`.
start_demo_server() {
  local bin=$1 log=$2
  shift 2
  "$bin" serve --demo --bind 127.0.0.1:0 "$@" >"$log" 2>&1 &
  server=$!
  base=""
  for _ in $(seq 1 150); do
    base=$(grep -o 'AU-Relay at http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/AU-Relay at //' || true)
    [ -n "$base" ] && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  echo "au-relay did not start:" >&2
  cat "$log" >&2
  return 1
}
