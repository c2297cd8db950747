#!/usr/bin/env bash
# Scan reconciliation benchmark (issue #17): pages per second of `POST /api/insurer/v1/scans`
# (upload, page extraction, PDF417 decode, match, stored result) for 300-dpi scans, next to
# zxing-cpp (the C++ reader, from PyPI) decoding the same page images in the same run, and the
# server's peak memory (VmHWM) for an upload of N/10 pages and of N pages.
#
#   scripts/bench-scans.sh [N]        # default 1000 pages
#
# The pages: 100 certificates captured over the API, their KK copies printed by AU-Relay,
# rasterised by poppler at 300 dpi, turned by -2…+2 degrees, with sensor noise and JPEG
# (quality 75) as a scanner writes them; N pages cycle through them, in one multi-page PDF of
# embedded JPEGs (img2pdf: no re-encoding). zxing-cpp reads the same JPEG files: once in one
# process, once in as many processes as AU-Relay has decoding threads (one per core).
# Release build, SQLite, queue off. Needs poppler-utils, python3-venv; pip installs zxing-cpp,
# pillow and img2pdf into a venv under the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
CERTS=100
BIN=${AU_RELAY_BIN:-target/release/au-relay}
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

[ -n "${AU_RELAY_BIN:-}" ] || cargo build --quiet --release --bin au-relay
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet zxing-cpp pillow img2pdf
PY="$work/venv/bin/python"

. scripts/lib-demo-server.sh
start() {
  AU_RELAY_DATABASE_URL="$work/bench.db" AU_RELAY_QUEUE=false AU_RELAY_LOG=warn,au_relay=info \
    AU_RELAY_MAX_SCAN_BYTES=$((8 * 1024 * 1024 * 1024)) start_demo_server "$BIN" "$work/server.log"
}
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}

echo "== $CERTS certificates and their KK copies"
start
token=$(AU_RELAY_DATABASE_URL="$work/bench.db" "$BIN" token create --insurer 109500969 --label bench)
mkdir -p "$work/kk" "$work/pages"
today=$(TZ=Europe/Berlin date +%F)
for i in $(seq 0 $((CERTS - 1))); do
  kvnr=$("$PY" -c "
i=$i; letter=chr(ord('A')+i%26); digits='%08d'%(31000000+i*7919)
d=[(ord(letter)-64)//10,(ord(letter)-64)%10]+[int(c) for c in digits]
s=sum(sum(divmod(v*(1 if k%2==0 else 2),10)) for k,v in enumerate(d))
print(letter+digits+str(s%10))")
  until=$(TZ=Europe/Berlin date -d "$today +$((2 + i % 9)) day" +%F)
  body="{\"kind\":\"ERST\",\"patient\":{\"kvnr\":\"$kvnr\",\"first_name\":\"Jürgen\",\"last_name\":\"Müller-Lüdenscheidt\",\"birth_date\":\"1980-04-01\",\"street\":\"Straße\",\"house_number\":\"5\",\"postal_code\":\"30159\",\"city\":\"Hannover\"},\"insurer\":{\"ik\":\"109500969\",\"name\":\"AOK Niedersachsen\",\"insured_type\":\"1\"},\"period\":{\"since\":\"$today\",\"until\":\"$until\",\"determined_on\":\"$today\"},\"diagnoses\":[{\"code\":\"J06.9\",\"certainty\":\"G\"},{\"code\":\"M54.5\",\"certainty\":\"G\"}]}"
  id=$(curl -sf -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer demo-token' \
    --data "$body" "$base/api/v1/certificates" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -sf -H 'Authorization: Bearer demo-token' -o "$work/kk/$i.pdf" "$base/api/v1/certificates/$id/pdf?copy=kk"
  pdftoppm -gray -png -singlefile -r 300 "$work/kk/$i.pdf" "$work/kk/$i"
done
stop

echo "== $N scanned pages at 300 dpi"
"$PY" - "$work" "$CERTS" "$N" <<'PY'
import random, sys
from PIL import Image, ImageChops
import img2pdf
work, certs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(17)
for i in range(certs):
    img = Image.open(f"{work}/kk/{i}.png").convert("L")
    img = img.rotate(rng.uniform(-2, 2), resample=Image.BILINEAR, fillcolor=255)
    img = ImageChops.add(img, Image.effect_noise(img.size, 4), 1.0, -128)
    img.save(f"{work}/pages/{i}.jpg", quality=75)
pages = [f"{work}/pages/{i % certs}.jpg" for i in range(n)]
with open(f"{work}/all.pdf", "wb") as f:
    f.write(img2pdf.convert(pages))
with open(f"{work}/tenth.pdf", "wb") as f:
    f.write(img2pdf.convert(pages[: max(1, n // 10)]))
PY
ls -l "$work/all.pdf" "$work/tenth.pdf" | awk '{print $5, $9}'

upload() { # $1 = file; prints "seconds pages peak_kib"
  start
  local t0 t1 pages peak
  t0=$(date +%s.%N)
  pages=$(curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/pdf' \
    --data-binary @"$1" "$base/api/insurer/v1/scans" |
    "$PY" -c 'import json,sys; b=json.load(sys.stdin); c=b["counts"]; print(b["pages"], c["electronic"])')
  t1=$(date +%s.%N)
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
  stop
  echo "$(echo "$t1 - $t0" | bc) $pages $peak"
}

echo "== AU-Relay: POST /api/insurer/v1/scans"
read -r small_s small_pages small_matched small_peak <<<"$(upload "$work/tenth.pdf")"
read -r all_s all_pages all_matched all_peak <<<"$(upload "$work/all.pdf")"

echo "== zxing-cpp on the same pages"
read -r zx1 zx1_ok zxn zxn_ok <<<"$("$PY" - "$work" "$CERTS" "$N" "$(nproc)" <<'PY'
import sys, time
from multiprocessing import Pool
work, certs, n, procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pages = [f"{work}/pages/{i % certs}.jpg" for i in range(n)]
def read(path):
    import zxingcpp
    from PIL import Image
    found = zxingcpp.read_barcodes(Image.open(path), formats=zxingcpp.BarcodeFormat.PDF417)
    return bool(found and found[0].valid)
t = time.time(); ok1 = sum(map(read, pages)); one = time.time() - t
with Pool(procs) as pool:
    t = time.time(); okn = sum(pool.map(read, pages, chunksize=8)); many = time.time() - t
print(f"{n/one:.1f} {ok1} {n/many:.1f} {okn}")
PY
)"

rate() { echo "scale=1; $1 / $2" | bc; }
ours=$(rate "$all_pages" "$all_s")
cat <<EOF

machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)
AU-Relay ($(nproc) decoding threads, decode + match + store, over HTTP):
  $small_pages pages: ${small_s}s, $small_matched matched, peak RSS $((small_peak / 1024)) MiB
  $all_pages pages: ${all_s}s = $ours pages/s, $all_matched matched, peak RSS $((all_peak / 1024)) MiB
zxing-cpp (decode only, the same JPEG pages):
  1 process:        $zx1 pages/s, $zx1_ok read
  $(nproc) processes:      $zxn pages/s, $zxn_ok read
ratio AU-Relay / zxing-cpp ($(nproc) processes): $(echo "scale=2; $ours / $zxn" | bc)
EOF
