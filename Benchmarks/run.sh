#!/usr/bin/env bash
# Runs hcore and its peers on the same machine, one after the other, and prints BENCHMARKS.md's table.
#   PEERS_PYTHON=/path/to/venv/bin/python Benchmarks/run.sh
# The venv is throwaway: python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch transformers onnxruntime onnx
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PEERS_PYTHON:-/tmp/peers/bin/python}
OUT=${OUT:-.build/bench-results.jsonl}
bash scripts/setup-fixtures.sh >/dev/null
swift build -c release --product hcore-bench >/dev/null
B=.build/release/hcore-bench
: > "$OUT"
$B peak | tee -a "$OUT"
$B gemm | tee -a "$OUT"
$B hans Tests/Fixtures/models/minilm-nli | tee -a "$OUT"
$PY Benchmarks/peers.py hans --model Tests/Fixtures/models/minilm-nli 2>/dev/null | tee -a "$OUT"
$B bert-base | tee -a "$OUT"
BB=${TMPDIR:-/tmp}/hcore-bert-base-random
$PY Benchmarks/peers.py bert-base --model "$BB" 2>/dev/null | tee -a "$OUT"
MASK=$(python3 -c "import json,sys; [print(json.loads(l)['mask']) for l in open('$OUT') if '\"heads50_mlps50\"' in l]")
$PY Benchmarks/peers.py bert-base --model "$BB" --mask-json "$MASK" 2>/dev/null | tee -a "$OUT"
# Issue 6: full HANS end to end (hcore eval, tokenization and model loading included) and many subnetworks.
swift build -c release --product hcore >/dev/null
/usr/bin/time -f '{"bench":"hans_e2e","engine":"hcore","seconds":%e}' .build/release/hcore eval \
  --model Tests/Fixtures/models/minilm-nli --data data/hans/heuristics_evaluation_set.txt.zst 2>&1 >/dev/null | grep '^{' | tee -a "$OUT"
$PY Benchmarks/peers.py hans-e2e --model Tests/Fixtures/models/minilm-nli --engines torch,ort,loop 2>/dev/null | tee -a "$OUT"
$B eval-many | tee -a "$OUT"
python3 Benchmarks/table.py "$OUT"
