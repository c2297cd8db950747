#!/usr/bin/env bash
# Renders the sample paper copies, rasterises every KK copy with pdftoppm (300 dpi, grey) and
# decodes its PDF417 with zxing-cpp, an implementation independent of the rxing encoder; the
# decoded bytes must equal the expected ISO 8859-15 payload (pdf::barcode_payload) byte for byte.
#
# Needs: cargo, poppler-utils (pdftoppm), python3 with zxing-cpp and Pillow
#   (pip install zxing-cpp pillow).
# Usage: scripts/pdf-check-barcode.sh [output-dir]   (default: a temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-$(mktemp -d)}"
mkdir -p "$out"
echo "samples -> $out"
PDF_SAMPLES_DIR="$out" cargo test --quiet --test it -- --ignored --exact pdf::write_sample_pdfs >/dev/null

for pdf in "$out"/*-kk.pdf "$out"/*-kk-a4.pdf; do
  pdftoppm -gray -r 300 -png -f 1 -l 1 -singlefile "$pdf" "${pdf%.pdf}"
done

python3 - "$out" <<'PY'
import pathlib, sys
import zxingcpp
from PIL import Image

out = pathlib.Path(sys.argv[1])
failures = 0
for payload_file in sorted(out.glob("*.payload")):
    png = payload_file.with_suffix(".png")
    expected = payload_file.read_bytes()
    found = zxingcpp.read_barcodes(Image.open(png), formats=zxingcpp.BarcodeFormat.PDF417)
    if len(found) != 1:
        print(f"FAIL {png.name}: {len(found)} PDF417 symbols found")
        failures += 1
        continue
    got = found[0].bytes
    if got != expected:
        print(f"FAIL {png.name}:\n  expected {expected!r}\n  decoded  {got!r}")
        failures += 1
    else:
        tabs = expected.count(b"\t")
        print(f"ok   {png.name}: {len(got)} bytes, {tabs} TABs, EC {found[0].ec_level}")
print("all barcodes decode to the expected payload" if failures == 0 else f"{failures} failure(s)")
sys.exit(1 if failures else 0)
PY
