#!/usr/bin/env bash
# Real-browser end-to-end test (headless Chromium + playwright-core, tests/e2e/e2e.mjs):
# builds the debug binary, starts `au-relay serve --demo` on a temp SQLite database and a free
# port, runs the test, stops the server. Screenshots and the printed PDF go to E2E_ARTIFACTS
# (default: a new temp dir). Needs node/npm and /usr/bin/chromium (Debian `chromium`); npm
# installs only playwright-core, never a browser.
#
#   scripts/e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

work=$(mktemp -d)
artifacts=${E2E_ARTIFACTS:-$work/artifacts}
mkdir -p "$artifacts"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work/db"
}
trap cleanup EXIT

echo "== build (debug)"
# --all-targets: the same feature set as `cargo test --all-targets` (scripts/test), so no second build.
cargo build --quiet --all-targets
(cd tests/e2e && npm ci --no-audit --no-fund --silent)

echo "== au-relay serve --demo on a temp database"
mkdir -p "$work/db"
. scripts/lib-demo-server.sh
AU_RELAY_DATABASE_URL="$work/db/e2e.db" AU_RELAY_LOG=info start_demo_server "${CARGO_TARGET_DIR:-target}/debug/au-relay" "$artifacts/server.log"
echo "server at $base"

echo "== browser test"
BASE_URL="$base" ARTIFACTS="$artifacts" node tests/e2e/e2e.mjs
