#!/usr/bin/env bash
# Issues 8 and 21's check, reproducible: prune minilm-nli to a target sparsity on HANS training pairs, then compare
# the KL to the full model of the found subnetwork with that of random subnetworks keeping exactly as many
# heads and MLPs, on held-out HANS evaluation pairs. Prints one JSON line per subnetwork.
#   scripts/validate-prune.sh [TARGET=0.5] [STEPS=900]        (~10 minutes on 2 cores)
# Another model: MODEL=demo-out/model TRAIN=demo-out/data/train.jsonl EVAL=demo-out/data/dev.jsonl scripts/validate-prune.sh
# HCORE=path runs that binary instead of building; SEED sets the seed (default 1). DROPOUT=0 turns the subnetwork's hidden and attention-probability dropout off (default: the config's, as the reference); ACCUM=4 accumulates gradients over 4
# batches as the paper does (default 1); PRUNE_ARGS adds flags to `hcore prune`.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-0.5}; STEPS=${2:-900}; WARMUP=$((STEPS * 2 / 3))
M=${MODEL:-Tests/Fixtures/models/minilm-nli}
TRAIN=${TRAIN:-data/hans/heuristics_train_set.txt.zst}
EVAL=${EVAL:-data/hans/heuristics_evaluation_set.txt.zst}
W=${WORK:-/tmp/hcore-validate-prune}
mkdir -p "$W"; rm -f "$W"/subs.hcs*
bash scripts/setup-fixtures.sh >/dev/null
# HCORE=path uses an already built binary (e.g. a copy, so that later builds cannot change it mid-run).
if [ -z "${HCORE:-}" ]; then swift build -c release --product hcore >/dev/null; fi
H=${HCORE:-.build/release/hcore}
$H activations --model "$M" --data "$TRAIN" --max-examples 2000 --out "$W/acts.safetensors"
$H prune --model "$M" --train "$TRAIN" --max-train-samples 8000 --activations "$W/acts.safetensors" \
  --store "$W/subs.hcs" --target-sparsity "$TARGET" --num-sparsity-warmup-steps $WARMUP --max-steps "$STEPS" --warmup-steps 50 \
  --gradient-accumulation-steps "${ACCUM:-1}" --initial-log-alpha 3 --seed "${SEED:-1}" ${DROPOUT:+--dropout "$DROPOUT"} ${PRUNE_ARGS:-}
$H store export "$W/subs.hcs" --json > "$W/pruned.json"
python3 - "$W" "$TARGET" "$M" "$EVAL" "$H" <<'PY'
import json, random, subprocess, sys
w = sys.argv[1]
sub = json.load(open(f"{w}/pruned.json"))[0]
heads, mlps = sub["heads"], sub["mlps"]
L, H = len(heads), len(heads[0])
kept_h, kept_m = sum(map(sum, heads)), sum(mlps)
def kl(mask, name):
    p = f"{w}/{name}.json"
    json.dump(mask, open(p, "w"))
    out = subprocess.run([sys.argv[5], "importance", "--model", sys.argv[3],
                          "--data", sys.argv[4], "--max-examples", "1000",
                          "--mask", p, "--activations", f"{w}/acts.safetensors", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["loss"]
units = L * H + L
print(json.dumps({"subnetwork": "pruned", "kept_heads": kept_h, "kept_mlps": kept_m, "sparsity": 1 - (kept_h + kept_m) / units,
                  "target": float(sys.argv[2]) if len(sys.argv) > 2 else None, "kl": kl({"heads": heads, "mlps": mlps}, "pruned-mask")}))
rng = random.Random(0)
for r in range(5):
    hs = set(rng.sample(range(L * H), kept_h)); ms = set(rng.sample(range(L), kept_m))
    m = {"heads": [[1 if l * H + h in hs else 0 for h in range(H)] for l in range(L)], "mlps": [1 if l in ms else 0 for l in range(L)]}
    print(json.dumps({"subnetwork": f"random{r}", "kept_heads": kept_h, "kept_mlps": kept_m, "kl": kl(m, f"random{r}")}))
PY
