#!/usr/bin/env bash
# The peer comparisons again (HANS 2,048, bert-base + subnetworks, full HANS end to end), two rounds: a
# replicate of Benchmarks/run.sh without the GEMM, pruning-step and many-subnetwork parts (~25 minutes).
set -euo pipefail
# Run after Benchmarks/run.sh (which builds the binaries and writes the random bert-base); then
#   python3 Benchmarks/table.py .build/bench-replicate.jsonl
cd "$(dirname "$0")/.."
PY=${PEERS_PYTHON:-/tmp/peers/bin/python}; OUT=${OUT:-.build/bench-replicate.jsonl}; M=Tests/Fixtures/models/minilm-nli; BB=${TMPDIR:-/tmp}/hcore-bert-base-random
B=.build/release/hcore-bench
: > $OUT
$B peak | tee -a $OUT
for round in 1 2; do
  $B hans $M | tee -a $OUT
  $PY Benchmarks/peers.py hans --model $M 2>/dev/null | tee -a $OUT
  $B bert-base | tee -a $OUT
  $PY Benchmarks/peers.py bert-base --model "$BB" 2>/dev/null | tee -a $OUT
  MASK=$(python3 -c "import json; print(next(json.loads(l)['mask'] for l in open('$OUT') if '\"heads50_mlps50\"' in l))")
  $PY Benchmarks/peers.py bert-base --model "$BB" --mask-json "$MASK" 2>/dev/null | tee -a $OUT
  /usr/bin/time -f '{"bench":"hans_e2e","engine":"hcore","seconds":%e}' .build/release/hcore eval \
    --model $M --data data/hans/heuristics_evaluation_set.txt.zst 2>&1 >/dev/null | grep '^{' | tee -a $OUT
  $PY Benchmarks/peers.py hans-e2e --model $M --engines torch,ort,loop 2>/dev/null | tee -a $OUT
done
