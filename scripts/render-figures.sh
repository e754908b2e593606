#!/usr/bin/env bash
# Renders SVG figures (and, optionally, the reference's PDFs) to PNG for a person to look at, with headless
# Chromium and poppler's pdftoppm (Debian: apt-get install chromium poppler-utils). Not part of CI.
#
#   scripts/render-figures.sh DIR                  every DIR/*.svg and DIR/index.html → DIR/png/*.png
#   scripts/render-figures.sh DIR PDFDIR           also every PDFDIR/*.pdf → DIR/png/paper-*.png
#
# docs/figures.md was made with:
#   .build/release/hcore figures ../shared/reference/data/eval/*.json --out /tmp/figs
#   scripts/render-figures.sh /tmp/figs ../shared/reference/data/plots
set -euo pipefail
dir=${1:?usage: scripts/render-figures.sh DIR [PDFDIR]}
pdfs=${2:-}
command -v chromium >/dev/null || { echo "needs chromium (apt-get install chromium)" >&2; exit 1; }
mkdir -p "$dir/png"
shot() {   # file width height out
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$2,$3" \
        --screenshot="$4" "file://$(realpath "$1")" >/dev/null 2>&1
}
for svg in "$dir"/*.svg; do
    [ -e "$svg" ] || continue
    size=$(grep -o 'viewBox="0 0 [0-9]* [0-9]*"' "$svg" | head -1 | tr -dc '0-9 ' | awk '{print $3, $4}')
    read -r w h <<<"$size"
    shot "$svg" "$w" "$h" "$dir/png/$(basename "${svg%.svg}").png"
    echo "$dir/png/$(basename "${svg%.svg}").png"
done
if [ -e "$dir/index.html" ]; then shot "$dir/index.html" 1200 2400 "$dir/png/index.png"; echo "$dir/png/index.png"; fi
if [ -n "$pdfs" ]; then
    command -v pdftoppm >/dev/null || { echo "needs pdftoppm (apt-get install poppler-utils)" >&2; exit 1; }
    for pdf in "$pdfs"/*.pdf; do
        pdftoppm -png -r 80 -singlefile "$pdf" "$dir/png/paper-$(basename "${pdf%.pdf}")"
        echo "$dir/png/paper-$(basename "${pdf%.pdf}").png"
    done
fi
