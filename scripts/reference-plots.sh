#!/usr/bin/env bash
# Runs the reference repository's seven JSON-reading plotting scripts (princeton-nlp/Heuristic-Core,
# scripts/visualization/*.py), unchanged, on results files hcore writes — with the arguments that drew the
# published PDFs — and says which succeed. Not part of CI: it needs the reference's scripts and a Python with
# seaborn, pandas, matplotlib and zstandard (the peers' venv: /tmp/peers/bin/pip install seaborn pandas zstandard).
#
#   scripts/reference-plots.sh REFERENCE_CHECKOUT [OUT]
#
# hcore runs a small study of each task from scratch (the `tiny` config, a few steps, so it takes minutes):
# fine-tuning with checkpoints, a pruning grid (checkpoints × target sparsities 0.3/0.5 × seeds 42–44), and the
# evaluations, written in the reference's four shapes:
#   MNLI-like: HANS pairs as the in-domain task (named mnli-matched / mnli-mismatched), HANS's plotted subcases OOD
#   QQP-like:  PAWS-QQP pairs as the in-domain task (named qqp), PAWS-QQP's label-0 rows (paws-qqp_0) OOD
# The numbers mean nothing (tiny models, a few steps); the files have the reference's shapes and spellings.
set -euo pipefail
REF=${1:?usage: scripts/reference-plots.sh REFERENCE_CHECKOUT [OUT]}
OUT=${2:-/tmp/hcore-reference-plots}
PY=${PY:-/tmp/peers/bin/python}
cd "$(dirname "$0")/.."
HC=$PWD/.build/release/hcore
[ -x "$HC" ] || swift build -c release >/dev/null
mkdir -p "$OUT/data/eval" "$OUT/data/plots" "$OUT/work"
W=$OUT/work

# Data: in-domain training pairs and two in-domain evaluation sets, and the OOD set, for each task.
"$PY" - "$W" <<'PY'
import json, sys, zstandard as z
w = sys.argv[1]
def rows(path):
    return [l.split("\t") for l in z.ZstdDecompressor().stream_reader(open(path, "rb")).read().decode().splitlines()]
hans = rows("data/hans/heuristics_train_set.txt.zst")[1:]
ev = rows("data/hans/heuristics_evaluation_set.txt.zst")
plotted = {"ln_subject/object_swap", "ln_preposition", "cn_embedded_under_if", "cn_embedded_under_verb"}
def dump(name, items):
    with open(f"{w}/{name}", "w") as f:
        for t, p, l in items: f.write(json.dumps({"text": t, "text_pair": p, "label": l}) + "\n")
dump("mnli-train.jsonl", [(r[5], r[6], r[0]) for r in hans[:400] + hans[-400:]])
dump("mnli-dev-m.jsonl", [(r[5], r[6], r[0]) for r in hans[5000:5060] + hans[-5060:-5000]])
dump("mnli-dev-mm.jsonl", [(r[5], r[6], r[0]) for r in hans[9000:9060] + hans[-9060:-9000]])
with open(f"{w}/hans-ood.txt", "w") as f:
    f.write("\t".join(ev[0]) + "\n")
    seen = {}
    for r in ev[1:]:
        if seen.get(r[9], 0) < 40: f.write("\t".join(r) + "\n"); seen[r[9]] = seen.get(r[9], 0) + 1
paws = rows("data/paws-qqp/dev_and_test.tsv.zst")
dump("qqp-train.jsonl", [(r[1], r[2], r[3]) for r in paws[1:500]])
dump("qqp-dev.jsonl", [(r[1], r[2], r[3]) for r in paws[500:620]])
with open(f"{w}/paws-ood.tsv", "w") as f: f.write("\n".join("\t".join(r) for r in [paws[0]] + paws[620:780]) + "\n")
PY

study() {   # task, train, in-domain names (space-separated), then the --data arguments
    local task=$1 train=$2 names=$3; shift 3
    local ids=() n
    for n in $names; do ids+=(--id-name "$n"); done
    local eval_args=("$@" "${ids[@]}")
    "$HC" finetune --config tiny --train "$W/$train" --out "$W/$task-ft" --per-device-train-batch-size 16 --max-steps 6 --save-steps 2 \
        --learning-rate 1e-3 2>/dev/null
    "$HC" eval --checkpoints "$W/$task-ft" "${eval_args[@]}" --format heuristic-core --shape acc-over-ft > "$OUT/data/eval/$task-acc_over_ft.json"
    "$HC" prune --checkpoints "$W/$task-ft" --grid-out "$W/$task-grid" --train "$W/$train" --max-train-samples 64 --activation-examples 64 \
        --target-sparsities 0.3,0.5 --seeds 42-44 --max-steps 4 --num-sparsity-warmup-steps 3 --warmup-steps 1 --gradient-accumulation-steps 1 \
        --per-device-train-batch-size 8 2>/dev/null
    local docs=()
    for store in "$W/$task-grid"/checkpoint-*.hcs; do
        local step=${store##*/checkpoint-}; step=${step%.hcs}
        "$HC" eval --model "$W/$task-ft/checkpoint-$step" --store "$store" --include-full "${eval_args[@]}" 2>/dev/null > "$W/$task-eval-$step.json"
        docs+=("$W/$task-eval-$step.json")
    done
    "$HC" eval merge --format heuristic-core --shape sparsity-grid "${ids[@]}" "${docs[@]}" > "$OUT/data/eval/$task-sparsity-grid-acc.json"
    local last=${docs[-1]}
    "$HC" eval merge --format heuristic-core --shape acc-vs-sparsity "${ids[@]}" "$last" > "$OUT/data/eval/$task-acc_vs_sparsity.json"
    local final=${last##*-eval-}; final=${final%.json}
    for t in 30 50; do
        "$HC" eval --model "$W/$task-ft/checkpoint-$final" --store "$W/$task-grid/checkpoint-$final.hcs" --where "target_sparsity=0.$t" "${eval_args[@]}" \
            --format heuristic-core 2>/dev/null > "$OUT/data/eval/$task-sp$t.json"
    done
}
echo "hcore: the MNLI-like study" >&2
study mnli mnli-train.jsonl "mnli-matched mnli-mismatched" --data "$W/mnli-dev-m.jsonl" --data "$W/mnli-dev-mm.jsonl" --data "$W/hans-ood.txt"
echo "hcore: the QQP-like study" >&2
study qqp qqp-train.jsonl "qqp" --data "$W/qqp-dev.jsonl" --data "$W/paws-ood.tsv"

# The reference's scripts, unchanged, with the published PDFs' arguments.
V=$REF/scripts/visualization
cd "$OUT"
ok=0; failed=0
run() { if MPLBACKEND=Agg "$PY" "$@" > "work/$(basename "$1").log" 2>&1; then echo "ok      $*"; ok=$((ok + 1)); else echo "FAILED  $* (work/$(basename "$1").log)"; failed=$((failed + 1)); fi; }
run "$V/mnli-subnets-violinplot.py" -i data/eval/mnli-sp50.json -o data/plots/mnli-sp50-vplot.pdf
run "$V/mnli-subnets-barplot.py" -i data/eval/mnli-sp50.json -o data/plots/mnli-sp50-bar.pdf
run "$V/mnli-acc-vs-sparsity.py" -i data/eval/mnli-acc_vs_sparsity.json -o data/plots/mnli-acc_vs_sparsity.pdf
run "$V/mnli-effective-size.py" -io data/eval/mnli-acc_over_ft.json -ip data/eval/mnli-sparsity-grid-acc.json -o data/plots/mnli-effective-size.pdf
run "$V/qqp-subnets-violinplot.py" -i data/eval/qqp-sp30.json -o data/plots/qqp-sp30-vplot.pdf
run "$V/qqp-acc-vs-sparsity.py" -p data/eval/qqp-acc_vs_sparsity.json -o data/plots/qqp-acc_vs_sparsity.pdf -oc paws-qqp_0
run "$V/qqp-effective-size.py" -io data/eval/qqp-acc_over_ft.json -ip data/eval/qqp-sparsity-grid-acc.json -o data/plots/qqp-effective-size.pdf
echo "$ok of 7 of the reference's plotting scripts ran on hcore's files ($failed failed); PDFs in $OUT/data/plots"
[ "$failed" -eq 0 ]
