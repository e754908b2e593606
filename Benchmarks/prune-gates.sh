#!/usr/bin/env bash
# The pruning step at points of a real run's sparsity ramp: hcore as `hcore prune` runs it (the full model's
# distribution cached, closed gates skipped), the same step computing every unit, PyTorch's reference step
# (Benchmarks/peers.py prune-step), and optionally BASE's hcore-bench prune-step (a build from before the skipping,
# at the paper's start, which computes every unit whatever the gates) — engines alternating, rounds in turned order.
#   PEERS_PYTHON=/tmp/peers/bin/python [BASE=/tmp/base/.build/release] [ROUNDS=2] [REPS=5] Benchmarks/prune-gates.sh
# The gate states come from a MiniLM run with the validation recipe at the paper's sp50 target (scripts/validate-
# prune.sh's flags: 900 steps, a 600-step ramp, log α from 3, seed 1, no accumulation), made once in $WORK (~3 min).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WORK:-/tmp/hcore-prune-gates}
PY=${PEERS_PYTHON:?set PEERS_PYTHON to the peers venv python (see BENCHMARKS.md)}
M=Tests/Fixtures/models/minilm-nli
TRAIN=data/hans/heuristics_train_set.txt.zst
mkdir -p "$W"
bash scripts/setup-fixtures.sh >/dev/null
swift build -c release --product hcore >/dev/null
swift build -c release --product hcore-bench >/dev/null
if [ ! -s "$W/trace.jsonl" ]; then
  rm -f "$W"/subs.hcs*
  .build/release/hcore activations --model $M --data $TRAIN --max-examples 2000 --out "$W/acts.safetensors"
  .build/release/hcore prune --model $M --train $TRAIN --max-train-samples 8000 --activations "$W/acts.safetensors" \
    --store "$W/subs.hcs" --target-sparsity 0.5 --num-sparsity-warmup-steps 600 --max-steps 900 --warmup-steps 50 \
    --gradient-accumulation-steps 1 --initial-log-alpha 3 --seed 1 --trace "$W/trace.jsonl"
fi
OUT="$W/results.jsonl"
: >"$OUT"
hcore() { .build/release/hcore-bench prune-step $M --gates "$W/trace.jsonl" --reps "${REPS:-5}" >>"$OUT"; }
torch() { "$PY" Benchmarks/peers.py prune-step --model $M --gates "$W/trace.jsonl" --reps "${REPS:-5}" >>"$OUT"; }
base() {
  if [ -n "${BASE:-}" ]; then
    "$BASE/hcore-bench" prune-step $M --reps "${REPS:-5}" | sed 's/"engine":"/"engine":"base-/' >>"$OUT"
  fi
}
for r in $(seq 1 "${ROUNDS:-2}"); do
  if ((r % 2)); then hcore; torch; base; else base; torch; hcore; fi
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def best(engine, gates=None):
    v = [r["seconds"] for r in rows if r["engine"] == engine and (gates is None or r.get("gates") == gates)]
    return min(v) if v else None
base = best("base-hcore-cached-full-model")
print("| gates (trace step) | gates at 0, mean of the steps | hcore (as hcore prune) s | same step, every unit s | PyTorch s | hcore vs PyTorch | BASE s |")
print("|---|---|---|---|---|---|---|")
for g in dict.fromkeys(r["gates"] for r in rows if r["engine"] == "hcore-cached-full-model"):
    r = next(r for r in rows if r["engine"] == "hcore-cached-full-model" and r["gates"] == g)
    h, u, t = best("hcore-cached-full-model", g), best("hcore-cached-unskipped", g), best("pytorch-eager", g)
    print(f"| {g} ({r['trace_step']}) | {r['closed_units_mean']:.1f} of 78 | {h:.3f} | {u:.3f} | {t:.3f} | **{t / h:.2f}×** | {base if base is None else round(base, 3)} |")
PY
