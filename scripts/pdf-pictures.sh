#!/usr/bin/env bash
# Regenerates docs/pdf-kk.png, docs/pdf-ag.png, docs/pdf-v.png (the "full" sample, A5, 100 dpi).
# Needs: cargo, poppler-utils (pdftoppm).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
PDF_SAMPLES_DIR="$tmp" cargo test --quiet --test it -- --ignored --exact pdf::write_sample_pdfs >/dev/null
for copy in kk ag v; do
  pdftoppm -png -r 100 -singlefile "$tmp/full-$copy.pdf" "docs/pdf-$copy"
done
ls -l docs/pdf-*.png
