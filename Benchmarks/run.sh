#!/usr/bin/env bash
# Runs hcore and its peers on the same machine, alternating, and prints BENCHMARKS.md's tables.
#   PEERS_PYTHON=/path/to/venv/bin/python Benchmarks/run.sh
# The venv is throwaway: python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch transformers onnxruntime onnx
# This machine's speed drifts by 15–40% within minutes, so each comparison runs ROUNDS times (default 2),
# hcore and peers alternating, and the tables report every engine's best round (and the spread).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PEERS_PYTHON:-/tmp/peers/bin/python}
OUT=${OUT:-.build/bench-results.jsonl}
ROUNDS=${ROUNDS:-2}; E2E_ROUNDS=${E2E_ROUNDS:-1}
M=Tests/Fixtures/models/minilm-nli
BB=${TMPDIR:-/tmp}/hcore-bert-base-random
bash scripts/setup-fixtures.sh >/dev/null
swift build -c release --product hcore-bench >/dev/null
swift build -c release --product hcore >/dev/null
B=.build/release/hcore-bench
tag() { sed "s/^{/{\"variant\":\"$1\",/"; }   # marks hcore runs with every last-layer row computed
: > "$OUT"
$B peak | tee -a "$OUT"
$B gemm --min | tee -a "$OUT"
for round in $(seq "$ROUNDS"); do
  $B hans $M | tee -a "$OUT"
  HCORE_ALL_ROWS=1 $B hans $M | tag all_rows | tee -a "$OUT"
  $PY Benchmarks/peers.py hans --model $M 2>/dev/null | tee -a "$OUT"
  $B bert-base | tee -a "$OUT"
  HCORE_ALL_ROWS=1 $B bert-base --full-only | tag all_rows | tee -a "$OUT"
  $PY Benchmarks/peers.py bert-base --model "$BB" 2>/dev/null | tee -a "$OUT"
  MASK=$(python3 -c "import json; print(next(json.loads(l)['mask'] for l in open('$OUT') if '\"heads50_mlps50\"' in l))")
  $PY Benchmarks/peers.py bert-base --model "$BB" --mask-json "$MASK" 2>/dev/null | tee -a "$OUT"
  $B prune-step | tee -a "$OUT"
  $PY Benchmarks/peers.py prune-step --model $M 2>/dev/null | tee -a "$OUT"
done
# Issue 6: full HANS end to end (hcore eval: model loading, tokenization, batches, metrics) and many subnetworks.
for round in $(seq "$E2E_ROUNDS"); do
  /usr/bin/time -f '{"bench":"hans_e2e","engine":"hcore","seconds":%e}' .build/release/hcore eval \
    --model $M --data data/hans/heuristics_evaluation_set.txt.zst 2>&1 >/dev/null | grep '^{' | tee -a "$OUT"
  $PY Benchmarks/peers.py hans-e2e --model $M --engines torch,ort,loop 2>/dev/null | tee -a "$OUT"
done
$B eval-many | tee -a "$OUT"
python3 Benchmarks/table.py "$OUT"
