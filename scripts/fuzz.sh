#!/usr/bin/env bash
# Fuzzes the input parsers with cargo-fuzz (libFuzzer), each target for a bounded time:
#   fhir_read   au_relay::fhir::read (KBV eAU bundles, seeded with the gematik fixtures)
#   draft_json  the API's JSON decoder into CertificateDraft, then Certificate::from_draft
#   draft_form  the staff form decoder (and serde_urlencoded) into CertificateDraft, then from_draft
# A draft that validates must also be written as a KBV bundle that the reader takes back.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     # default 60; targets: FUZZ_TARGETS="fhir_read …"
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags; the
# sanitizer is off (`-s none`: safe Rust, `unsafe_code = "forbid"`), so a finding is a panic,
# an overflow (debug assertions are on) or a timeout. Installs cargo-fuzz from crates.io if
# missing. Findings land in fuzz/artifacts/<target>/ (replay: cargo fuzz run <target> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
TARGETS=${FUZZ_TARGETS:-"fhir_read draft_json draft_form"}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Corpora start from the seeds (and the gematik bundles); libFuzzer adds what it finds.
mkdir -p fuzz/corpus/fhir_read fuzz/corpus/draft_json fuzz/corpus/draft_form
find tests/fixtures/gematik-eau -name '*.xml' -exec cp -n {} fuzz/corpus/fhir_read/ \;
cp -n fuzz/seeds/draft_json/* fuzz/corpus/draft_json/
cp -n fuzz/seeds/draft_form/* fuzz/corpus/draft_form/

# cargo-fuzz's own flags go before the target's arguments: after `--` they would reach libFuzzer,
# and `run` would rebuild everything with the default sanitizer.
fuzz() { cargo fuzz "$1" --sanitizer none --debug-assertions "${@:2}"; }
echo "== build"
fuzz build
summary=()
status=0
for t in $TARGETS; do
  echo "== $t for ${SECS} s"
  log=$(mktemp)
  if fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$SECS" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FINDING (see fuzz/artifacts/$t/)"
    status=1
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -10
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -oE '#[0-9]+.*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' || true)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  summary+=("$(printf '%-11s %-8s %10s runs in %ss (%s/s), %s, corpus %s files' "$t" "$result" \
    "${runs:-?}" "$SECS" "$(( ${runs:-0} / SECS ))" "${cov:-cov: ?}" "$corpus")")
  rm -f "$log"
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
