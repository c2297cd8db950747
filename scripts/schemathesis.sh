#!/usr/bin/env bash
# Property-based API test with schemathesis against /api-docs/openapi.json: starts
# `au-relay serve --demo` on a temp SQLite database, then runs schemathesis twice, the practice
# API with the demo token and the insurer pull API with an insurer token for IK 109500969, with
# the checks "no server error" and "response conforms to the schema" (status code, content type
# and body). Bounded: ST_MAX_TIME seconds per run (default 120), ST_MAX_EXAMPLES per operation.
#
#   scripts/schemathesis.sh
#
# Installs schemathesis with pip if it is missing. Reports land in $ST_REPORT_DIR (default a
# temp dir): JUnit XML and a pytest file reproducing each failure.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_TIME=${ST_MAX_TIME:-120}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-100}
command -v schemathesis >/dev/null || python3 -m pip install --quiet schemathesis
work=$(mktemp -d)
reports=${ST_REPORT_DIR:-$work/reports}
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --all-targets: the same feature set as `cargo test --all-targets` (scripts/test), so no second build.
cargo build --quiet --all-targets
export AU_RELAY_DATABASE_URL="$work/st.db"
. scripts/lib-demo-server.sh
AU_RELAY_LOG=info start_demo_server "${CARGO_TARGET_DIR:-target}/debug/au-relay" "$work/server.log"
insurer_token=$("${CARGO_TARGET_DIR:-target}/debug/au-relay" token create --insurer 109500969 --label schemathesis 2>/dev/null)

# A few stored certificates, so that GET/cancel/pdf by id meet existing ones too (schemathesis
# links them through the Location header).
today=$(TZ=Europe/Berlin date +%F)
for n in 1 2 3; do
  curl -fsS -o /dev/null -X POST "$base/api/v1/certificates" -H 'Authorization: Bearer demo-token' \
    -H 'Content-Type: application/json' --data "{\"kind\":\"FOLGE\",\"patient\":{\"kvnr\":\"A123456780\",\
\"first_name\":\"Jürgen\",\"last_name\":\"Müller $n\",\"birth_date\":\"1980-04-01\",\"street\":\"Straße\",\
\"house_number\":\"5\",\"postal_code\":\"30159\",\"city\":\"Hannover\"},\"insurer\":{\"ik\":\"109500969\",\
\"name\":\"AOK\",\"insured_type\":\"1\"},\"period\":{\"until\":\"$today\",\"determined_on\":\"$today\"},\
\"diagnoses\":[{\"code\":\"J06.9\"}]}"
done

run() { # name token include-regex
  echo "== schemathesis: $1"
  schemathesis run "$base/api-docs/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --header "Authorization: Bearer $2" --include-path-regex "$3" \
    --max-time "$MAX_TIME" --max-examples "$MAX_EXAMPLES" --workers 2 --seed 8 \
    --report junit,pytest --report-dir "$reports/$1" --no-color 2>&1 | tee "$work/$1.txt" | tail -40
  return "${PIPESTATUS[0]}"
}
status=0
run practice demo-token '^/api/v1/' || status=1
run insurer "$insurer_token" '^/api/insurer/' || status=1
echo "== 5xx in the server log: $(grep -cE ' 5[0-9][0-9] [0-9.]+ms' "$work/server.log" || true)"
echo "reports in $reports"
exit $status
