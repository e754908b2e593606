#!/usr/bin/env bash
# A change's speed against an earlier build, in one run on one machine: the earlier build's binaries and
# this tree's alternate (round 1: base, new; round 2: new, base) on minilm-nli HANS 2,048, random
# bert-base (full and 50% heads/MLPs), the pruning step, 100 subnetworks on 512 pairs and full HANS end to
# end; the peers (PyTorch, ONNX Runtime) once per round on the same workloads. Then
#   python3 Benchmarks/before-after.py .build/bench-before-after.jsonl
# Usage: BASE=/path/to/other/checkout/.build/release Benchmarks/before-after.sh   (~30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE:?set BASE to the .build/release folder of the earlier build (git worktree add /tmp/base REV; swift build -c release there)}"
PY=${PEERS_PYTHON:-/tmp/peers/bin/python}; OUT=${OUT:-.build/bench-before-after.jsonl}; M=Tests/Fixtures/models/minilm-nli
BB=${TMPDIR:-/tmp}/hcore-bert-base-random
NEW=.build/release
tag() { sed "s/^{/{\"build\":\"$1\",/"; }
hcore_parts() {   # $1: folder of the binaries, $2: tag
  "$1/hcore-bench" hans $M | tag "$2" | tee -a "$OUT"
  "$1/hcore-bench" bert-base | tag "$2" | tee -a "$OUT"
  "$1/hcore-bench" prune-step | tag "$2" | tee -a "$OUT"
  "$1/hcore-bench" eval-many | tag "$2" | tee -a "$OUT"
  /usr/bin/time -f '{"bench":"hans_e2e","engine":"hcore","seconds":%e}' "$1/hcore" eval \
    --model $M --data data/hans/heuristics_evaluation_set.txt.zst 2>&1 >/dev/null | grep '^{' | tag "$2" | tee -a "$OUT"
}
: > "$OUT"
"$NEW/hcore-bench" peak | tee -a "$OUT"
for round in 1 2; do
  if [ $round = 1 ]; then hcore_parts "$BASE" base; hcore_parts "$NEW" new; else hcore_parts "$NEW" new; hcore_parts "$BASE" base; fi
  $PY Benchmarks/peers.py hans --model $M 2>/dev/null | tee -a "$OUT"
  $PY Benchmarks/peers.py bert-base --model "$BB" 2>/dev/null | tee -a "$OUT"
  $PY Benchmarks/peers.py hans-e2e --model $M --engines torch,ort 2>/dev/null | tee -a "$OUT"
  $PY Benchmarks/peers.py prune-step --model $M 2>/dev/null | tee -a "$OUT"
done
"$NEW/hcore-bench" peak | tee -a "$OUT"
