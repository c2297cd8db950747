#!/usr/bin/env bash
# AU-Relay's paper copies (KK, AG, V) and PDF417 payload against the KBV eAU stylesheets V1.2.
#
#   scripts/kbv-stylesheet-check.sh <stylesheet-dir> [out-dir] [--pictures]
#
# <stylesheet-dir> holds EAU_Stylesheet_KK.xslt, EAU_Stylesheet_AG.xslt and
# EAU_Stylesheet_V.xslt from the KBV's eAU_Stylesheet_V1.2.zip. They are not part of this
# repository (KBV licence): keep them outside the checkout and pass their directory.
#
# Writes, for every sample of the ignored test `write_oracle_samples` (tests/it/pdf.rs), AU-Relay's
# bundle, PDFs and payload to <out-dir>/au-relay, the KBV HTML of each copy and the KK
# stylesheet's barcode string to <out-dir>/kbv, and compares them field by field with
# scripts/kbv-stylesheet-check.py (exit status 1 if a field differs). <out-dir> defaults to a
# new temporary directory. With --pictures it also renders the KBV copies of the sample "full"
# with headless Chromium to docs/kbv-kk.png, docs/kbv-ag.png and docs/kbv-v.png.
#
# Needs cargo, xsltproc, pdftotext, python3 (standard library) and, for --pictures, chromium.
set -euo pipefail

pictures=0
args=()
for a in "$@"; do
    case "$a" in
        --pictures) pictures=1 ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) args+=("$a") ;;
    esac
done
if [ "${#args[@]}" -lt 1 ] || [ "${#args[@]}" -gt 2 ]; then
    echo "usage: $0 <stylesheet-dir> [out-dir] [--pictures]" >&2
    exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
xslt=$(cd "${args[0]}" && pwd)
out=${args[1]:-$(mktemp -d "${TMPDIR:-/tmp}/kbv-stylesheet-check.XXXXXX")}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for copy in KK AG V; do
    if [ ! -f "$xslt/EAU_Stylesheet_$copy.xslt" ]; then
        echo "missing $xslt/EAU_Stylesheet_$copy.xslt" >&2
        exit 2
    fi
done
case "$xslt/" in
    "$repo"/*) echo "the KBV stylesheets must not live inside the repository ($xslt)" >&2; exit 2 ;;
esac
for tool in cargo xsltproc pdftotext python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 2; }
done

rm -rf "$out/au-relay" "$out/kbv"
mkdir -p "$out/au-relay" "$out/kbv"

echo "AU-Relay: bundles, PDFs and payloads → $out/au-relay"
(cd "$repo" && ORACLE_DIR="$out/au-relay" cargo test --quiet --test it -- \
    --ignored --exact pdf::write_oracle_samples >"$out/cargo-test.log" 2>&1) || {
    cat "$out/cargo-test.log" >&2
    exit 1
}

# The KK stylesheet builds the barcode content in its template BarcodeGeneratorParameter and
# shows it through AnzeigeBarcodePerGenerator (its "Variante 1", commented out in the shipped
# copy). This wrapper, written outside the repository's sources at run time, imports the
# stylesheet unchanged and calls the two templates on the bundle.
kk_uri=$(python3 -c 'import pathlib,sys; print(pathlib.Path(sys.argv[1]).as_uri())' \
    "$xslt/EAU_Stylesheet_KK.xslt")
cat >"$out/kbv-barcode.xslt" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:fhir="http://hl7.org/fhir" xmlns="http://www.w3.org/1999/xhtml"
    exclude-result-prefixes="fhir">
  <xsl:import href="$kk_uri"/>
  <xsl:output method="xml" encoding="UTF-8"/>
  <xsl:template match="/">
    <html><body>
      <xsl:for-each select="/fhir:Bundle">
        <xsl:variable name="BarcodeInhalt">
          <xsl:call-template name="BarcodeGeneratorParameter"/>
        </xsl:variable>
        <xsl:call-template name="AnzeigeBarcodePerGenerator">
          <xsl:with-param name="BarcodeInhalt" select="\$BarcodeInhalt"/>
        </xsl:call-template>
      </xsl:for-each>
    </body></html>
  </xsl:template>
</xsl:stylesheet>
EOF

echo "KBV stylesheets: HTML of each copy → $out/kbv"
n=0
for bundle in "$out"/au-relay/*.xml; do
    name=$(basename "$bundle" .xml)
    for copy in KK AG V; do
        lower=$(echo "$copy" | tr 'A-Z' 'a-z')
        xsltproc --nonet -o "$out/kbv/$name-$lower.html" \
            "$xslt/EAU_Stylesheet_$copy.xslt" "$bundle"
    done
    xsltproc --nonet -o "$out/kbv/$name-barcode.xml" "$out/kbv-barcode.xslt" "$bundle"
    n=$((n + 1))
done
echo "$n samples transformed"

if [ "$pictures" = 1 ]; then
    command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || {
        echo "chromium not found" >&2
        exit 2
    }
    chrome=$(command -v chromium || echo /usr/bin/chromium)
    profile=$(mktemp -d "${TMPDIR:-/tmp}/kbv-chromium.XXXXXX")
    # Page heights of the sample "full" at 900 px width: KK, AG, V.
    for shot in kk:990 ag:620 v:1030; do
        lower=${shot%%:*}
        # The stylesheets write XHTML: rendered as such, not through the HTML tag soup parser.
        cp "$out/kbv/full-$lower.html" "$out/kbv/full-$lower.xhtml"
        "$chrome" --headless --no-sandbox --disable-gpu --disable-background-networking \
            --disable-component-update --hide-scrollbars --user-data-dir="$profile" \
            --window-size="900,${shot#*:}" --screenshot="$repo/docs/kbv-$lower.png" \
            "file://$out/kbv/full-$lower.xhtml" >/dev/null 2>&1
        echo "docs/kbv-$lower.png"
    done
    rm -rf "$profile"
fi

python3 "$repo/scripts/kbv-stylesheet-check.py" "$out/au-relay" "$out/kbv"
