#!/usr/bin/env bash
# The cluster recipes under a real Slurm: starts a one-node Slurm from Debian's packages (munge, slurmctld,
# slurmd; its slurm.conf, state and logs in a temporary folder), then, as a user would, from a fresh folder:
#   1. a tiny fine-tuning run with two checkpoints (the grid's input);
#   2. `sbatch --array=1-3 examples/prune-grid.sbatch` on it (2 checkpoints × 2 targets × 2 seeds = 8 cells into
#      grid/checkpoint-STEP.hcs, written concurrently), with one array task cancelled mid-run (`scancel`) and
#      resubmitted once the others ended (`sbatch --array=2`, a one-task array: it takes every cell, skips the
#      finished ones and resumes the interrupted one from its checkpoint file);
#   3. `sbatch --array=1-2 examples/prune-seeds.sbatch` (4 seeds into per-shard stores) and `hcore store merge`;
#   4. `sbatch --array=1-3 examples/eval-shards.sbatch` on one grid store, every task writing its metrics back to
#      that shared store, then `hcore eval merge` of the parts;
#   5. the checks: every cell once in the grid's stores, each equal (masks, log α) to the same cell pruned
#      serially; every subnetwork's metrics written back once and equal to a serial `hcore eval`; the merged
#      document's metrics equal the serial one's; every store verifies.
# It stops what it started and removes the temporary folder. Needs: slurm-wlm and munge installed (as root:
# apt-get install -y slurm-wlm munge), hcore built (swift build -c release --product hcore), root.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
for tool in slurmctld slurmd sbatch munged; do
    command -v "$tool" > /dev/null || { echo "slurm-check: $tool missing: apt-get install -y slurm-wlm munge" >&2; exit 2; }
done
[ -x "$repo/.build/release/hcore" ] || { echo "slurm-check: build hcore first: swift build -c release --product hcore" >&2; exit 2; }
export PATH="$repo/.build/release:$PATH"
T=$(mktemp -d /tmp/hcore-slurm.XXXXXX)
started=()
cleanup() {
    scancel --user=root > /dev/null 2>&1 || true
    for pid in "${started[@]}"; do kill "$pid" 2> /dev/null || true; done
    sleep 1
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
say() { echo "slurm-check: $*"; }

# --- a one-node Slurm ---------------------------------------------------------------------------------------
if ! munge -n > /dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file="$T/munged.pid"
    sleep 1
    started+=("$(cat "$T/munged.pid")")
fi
host=$(hostname -s)
mkdir -p "$T/state" "$T/spool"
cat > "$T/slurm.conf" << EOF
ClusterName=hcore-check
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AuthType=auth/munge
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=$(free -m | awk '/Mem:/ {print $2}') State=UNKNOWN
PartitionName=check Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$T/slurm.conf
slurmctld -i
slurmd
for _ in $(seq 50); do [ -s "$T/slurmctld.pid" ] && [ -s "$T/slurmd.pid" ] && break; sleep 0.1; done
started+=("$(cat "$T/slurmctld.pid")" "$(cat "$T/slurmd.pid")")
for _ in $(seq 30); do sinfo -h -o %t | grep -q idle && break; sleep 1; done
say "one-node Slurm up: $(sinfo -h -o '%P %D %t %c CPUs')"

# --- the recipes, as a user runs them ---------------------------------------------------------------------
work=$T/work
mkdir -p "$work" && cd "$work"
train=$repo/Tests/Fixtures/reference/datasets/paws-qqp
hcore finetune --config tiny --train "$train" --max-train-samples 64 --max-steps 4 --save-steps 2 \
    --per-device-train-batch-size 16 --out ft > ft.log 2>&1 || { cat ft.log >&2; exit 1; }
say "fine-tuned: $(ls -d ft/checkpoint-* | tr "\n" " ")"
export CHECKPOINTS=ft TRAIN=$train TARGETS=0.3,0.5 SEEDS=1-2 GRID=grid
export PRUNE_ARGS="--max-train-samples 64 --activation-examples 32 --max-steps 40 --num-sparsity-warmup-steps 20 --per-device-train-batch-size 8 --checkpoint-steps 5"
job=$(sbatch --parsable --array=1-3 "$repo/examples/prune-grid.sbatch")
say "submitted prune-grid as array job $job (3 tasks, 8 cells)"
# Cancel task 2 once it has stored a cell or left a checkpoint, then resubmit it.
for _ in $(seq 600); do
    if ls grid/*.prune-*.json > /dev/null 2>&1 && squeue -h -j "${job}_2" -t R | grep -q .; then break; fi
    sleep 0.2
done
scancel "${job}_2"
say "cancelled task ${job}_2 mid-run: $(ls grid/ | grep -c 'prune-.*json$' || true) checkpoint file(s) left"
for _ in $(seq 600); do squeue -h -j "$job" | grep -q . || break; sleep 1; done
again=$(sbatch --parsable --array=2 "$repo/examples/prune-grid.sbatch")
for _ in $(seq 600); do squeue -h -j "$again" | grep -q . || break; sleep 1; done
say "resubmitted task 2 as $again: $(grep -h -c 'resuming' slurm-"${again}"_2.log || true) run(s) resumed"

# --- checks of the grid ---------------------------------------------------------------------------------
fail() { echo "slurm-check: FAILED: $*" >&2; exit 1; }
for store in grid/checkpoint-*.hcs; do
    hcore store verify "$store" > /dev/null || fail "$store does not verify"
done
# shellcheck disable=SC2086  # PRUNE_ARGS is a list of flags
hcore prune --checkpoints ft --grid-out serial --train "$train" --target-sparsities "$TARGETS" --seeds "$SEEDS" \
    $PRUNE_ARGS > serial.log 2>&1 || { tail -5 serial.log >&2; fail "the serial grid did not run"; }
python3 - "$work" << 'PY' || fail "the grid differs from the serial run"
import json, subprocess, sys, glob, os
work = sys.argv[1]
def cells(folder):
    out = {}
    for store in sorted(glob.glob(f"{work}/{folder}/checkpoint-*.hcs")):
        subs = json.loads(subprocess.check_output(["hcore", "store", "export", store]))
        for s in subs:
            key = (os.path.basename(store), s["name"])
            assert key not in out, f"{key} twice"
            out[key] = (s["heads"], s["mlps"], s.get("log_alpha"))
    return out
grid, serial = cells("grid"), cells("serial")
assert len(grid) == 8 and grid.keys() == serial.keys(), (sorted(grid), sorted(serial))
for k in grid:
    assert grid[k] == serial[k], f"{k} differs"
print("slurm-check: 8 cells, each once, equal to the serial run (masks and log α)")
PY

# --- seeds in per-shard stores, merged ---------------------------------------------------------------------
hcore activations --model ft/checkpoint-4 --data "$train" --max-examples 32 --out acts.safetensors 2> /dev/null
MODEL=ft/checkpoint-4 ACTIVATIONS=acts.safetensors STORE=seeds.hcs SEEDS=1-4 \
    sbatch --parsable --wait --array=1-2 "$repo/examples/prune-seeds.sbatch" > /dev/null
hcore store merge seeds.hcs seeds.hcs.shard-1-of-2 seeds.hcs.shard-2-of-2 > /dev/null 2>&1
hcore store verify seeds.hcs > /dev/null || fail "the merged store does not verify"
merged=$(hcore store ls seeds.hcs --json | python3 -c 'import json,sys; print(" ".join(sorted(s["name"] for s in json.load(sys.stdin))))')
[ "$merged" = "prune-t0.5-seed1 prune-t0.5-seed2 prune-t0.5-seed3 prune-t0.5-seed4" ] || fail "merged seeds: $merged"
say "prune-seeds as a 2-task array into per-shard stores, merged: $merged"

# --- eval shards writing back to one shared store -------------------------------------------------------
store=$(ls grid/checkpoint-*.hcs | tail -1)
step=$(basename "$store" .hcs)
cp "$store" shared.hcs
export MODEL=ft/$step STORE=shared.hcs DATA="--data $repo/Tests/Fixtures/reference/datasets/paws-qqp" EVAL_ARGS=--write-back
job=$(sbatch --parsable --wait --array=1-3 "$repo/examples/eval-shards.sbatch")
hcore eval merge results/part-*.json > merged.json
hcore eval --model "ft/$step" --store "$store" --data "$repo/Tests/Fixtures/reference/datasets/paws-qqp" \
    --include-full > serial.json 2> /dev/null
hcore store verify shared.hcs > /dev/null || fail "the shared store does not verify"
python3 - << 'PY' || fail "the sharded evaluation differs from the serial one"
import json, subprocess
merged, serial = json.load(open("merged.json")), json.load(open("serial.json"))
def metrics(doc):
    return {r["subnetwork"]: {k: (m["accuracy"], m["count"]) for k, m in r["metrics"].items()} for r in doc["results"]}
assert metrics(merged) == metrics(serial), "merged parts differ"
subs = json.loads(subprocess.check_output(["hcore", "store", "export", "shared.hcs"]))
for s in subs:
    keys = [k for k in s["meta"] if k.startswith("eval/")]
    assert keys, f"{s['name']} has no metric written back"
    acc = next(v for k, v in s["meta"].items() if k.startswith("eval/") and k.count("/") == 1)
    assert abs(acc - metrics(serial)[s["name"]][list(metrics(serial)[s["name"]])[0]][0]) < 1e-12, s["name"]
print(f"slurm-check: {len(merged['results'])} results (the full model and {len(subs)} subnetworks) merged from 3 shards equal the serial run; every subnetwork's metric written back once into the shared store")
PY
say "ok"
