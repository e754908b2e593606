#!/usr/bin/env bash
# The main command on several base seeds, and the table of their verdicts with the rate of success.
#
#   scripts/demo-seeds.sh 11 13 17 19 23          one seed after another on this machine
#   scripts/demo-seeds.sh --slurm 11 13 17 19 23  one Slurm array task per seed (sbatch), then the table
#                                                 once every task has finished (rerun with --table-only)
#   scripts/demo-seeds.sh --table-only 11 13 …    the table of runs already made
#
# Each seed runs `scripts/demo.sh --seed N --out demo-seeds/seed-N` (so every stage resumes after an
# interruption) and leaves its report in demo-seeds/seed-N/report/; its wall time after the build goes to
# demo-seeds/seed-N/seconds. The table is Markdown, one row per seed, from each report.json; the last line is
# the success rate. Seeds chosen for any setting of the demo are not held out: the README names the seeds used.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=run
case "${1:-}" in
--slurm) mode=slurm; shift ;;
--table-only) mode=table; shift ;;
esac
[ $# -ge 1 ] || { echo "usage: scripts/demo-seeds.sh [--slurm | --table-only] SEED…" >&2; exit 2; }
for s in "$@"; do
    [[ "$s" =~ ^[0-9]+$ ]] || { echo "demo-seeds: '$s' is not a seed (a non-negative integer)" >&2; exit 2; }
done
root=demo-seeds
mkdir -p "$root"

if [ "$mode" = slurm ]; then
    command -v sbatch > /dev/null || { echo "demo-seeds: --slurm needs sbatch on PATH" >&2; exit 2; }
    scripts/setup-fixtures.sh
    swift build -c release --product hcore 2>&1 | tail -1
    seeds="$*"
    # Slurm opens --output before the job runs: the folder exists first.
    sbatch --array="0-$(($# - 1))" --cpus-per-task=2 --output="$root/slurm-%A_%a.log" --wrap "
        seeds=($seeds); s=\${seeds[\$SLURM_ARRAY_TASK_ID]}
        start=\$(date +%s)
        .build/release/hcore demo --seed \$s --out $root/seed-\$s 2> $root/seed-\$s.log
        echo \$(( \$(date +%s) - start )) > $root/seed-\$s/seconds"
    echo "submitted; when every task has finished: scripts/demo-seeds.sh --table-only $*" >&2
    exit 0
fi

if [ "$mode" = run ]; then
    scripts/setup-fixtures.sh
    swift build -c release --product hcore 2>&1 | tail -1
    for s in "$@"; do
        echo "seed $s → $root/seed-$s (log: $root/seed-$s.log)" >&2
        start=$(date +%s)
        .build/release/hcore demo --seed "$s" --out "$root/seed-$s" > /dev/null 2> "$root/seed-$s.log"
        echo $(($(date +%s) - start)) > "$root/seed-$s/seconds"
    done
fi

python3 - "$root" "$@" << 'EOF'
import json, os, sys
root, seeds = sys.argv[1], sys.argv[2:]
print("| base seed | minutes | full model: in-domain / OOD | matching | their OOD | span [95% interval] | noise span (95th pct), p | residual span (R²) | verdict (deciding test) |")
print("|---|---|---|---|---|---|---|---|---|")
shown = 0
for s in seeds:
    path = f"{root}/seed-{s}/report/report.json"
    if not os.path.exists(path):
        print(f"| {s} | — | not finished | | | | | | |")
        continue
    r = json.load(open(path))
    secs = open(f"{root}/seed-{s}/seconds").read().strip() if os.path.exists(f"{root}/seed-{s}/seconds") else ""
    minutes = f"{int(secs) / 60:.1f}" if secs else "—"
    full = r["full"]
    subs = [x for x in r["subnetworks"] if x["matches_full_in_domain"]]
    ood = [x["ood_measure"] * 100 for x in subs]
    span, lean, v = r.get("span"), r.get("lean"), r["verdict"]
    rng = f"{min(ood):.1f}–{max(ood):.1f}" if ood else "—"
    sp = f"{span['span_points']:.1f} [{span['interval_95'][0]:.1f}, {span['interval_95'][1]:.1f}]" if span else "—"
    noise = f"{span['noise_95th']:.1f}, p {span['noise_p']:.4f}" if span else "—"
    res = f"{lean['residual_span_points']:.1f} ({lean['r_squared']:.2f})" if lean else "—"
    shown += v["outcome"] == "shown"
    print(f"| {s} | {minutes} | {full['id_accuracy'] * 100:.1f} / {full['ood_measure'] * 100:.1f} | {len(subs)} of {len(r['subnetworks'])} | {rng} | {sp} | {noise} | {res} | {v['outcome']} ({v['decided_by']}) |")
print(f"\nshown in {shown} of {len(seeds)} base seeds ({', '.join(seeds)})")
EOF
