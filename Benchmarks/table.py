#!/usr/bin/env python3
"""Turns the JSON lines of Benchmarks/run.sh into the ratios of BENCHMARKS.md (standard library only)."""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def pick(**kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

peak = pick(bench="fma_peak", threads=2)[-1]["gflops"]
print(f"FMA peak probe, 2 threads: {peak:.0f} GFLOP/s (1 thread: {pick(bench='fma_peak', threads=1)[-1]['gflops']:.0f})\n")
print("| GEMM (M×N×K), 2 threads | GFLOP/s | % of probed peak |\n|---|---|---|")
for r in pick(bench="gemm"):
    print(f"| {r['shape']} | {r['gflops']:.0f} | {100 * r['gflops'] / peak:.0f}% |")
h = pick(bench="hans", engine=None)[-1] if pick(bench="hans", engine=None) else None
print("\n| minilm-nli, 2,048 HANS pairs, length-sorted batches of 32 | pairs/s | hcore ÷ peer |\n|---|---|---|")
if h:
    print(f"| hcore | {h['pairs_per_s']:.0f} | — |")
    for r in pick(bench="hans"):
        if "engine" in r:
            print(f"| {r['engine']} | {r['per_s']:.0f} | {h['pairs_per_s'] / r['per_s']:.2f}× |")
    tok = [r["tokenize_s"] for r in pick(bench="hans") if "engine" in r]
    if tok:
        print(f"\nTokenizing the 2,048 pairs: hcore {h['tokenize_s'] * 1000:.0f} ms, HF fast tokenizer (per pair calls) {tok[0] * 1000:.0f} ms.")
full = [r for r in pick(bench="bert_base") if r.get("subnetwork") == "full"]
if full:
    f = full[-1]
    print("\n| bert-base, batch 32 × length 128 | sequences/s | hcore ÷ peer |\n|---|---|---|")
    print(f"| hcore | {f['sequences_per_s']:.2f} ({f['gflops']:.0f} GFLOP/s, {100 * f['gflops'] / peak:.0f}% of peak) | — |")
    for r in rows:
        if r.get("bench") == "bert_base" and "engine" in r:
            print(f"| {r['engine']} | {r['per_s']:.2f} | {f['sequences_per_s'] / r['per_s']:.2f}× |")
    print("\n| subnetwork of bert-base (mean ablation, compiled plan) | sequences/s | speed-up over full | FLOP ratio | speed-up ÷ FLOP ratio |\n|---|---|---|---|---|")
    for r in pick(bench="bert_base"):
        if r.get("subnetwork") not in (None, "full"):
            print(f"| {r['subnetwork']} | {r['sequences_per_s']:.2f} | {r['speedup']:.2f}× | {r['flop_ratio']:.2f} | {r['speedup_over_flop_ratio']:.2f} |")
    sub = [r for r in pick(bench="bert_base") if r.get("subnetwork") == "heads50_mlps50"]
    rem = [r for r in rows if r.get("bench") == "bert_base_heads_removed"]
    if sub and rem:
        print("\n| heads50_mlps50 subnetwork | sequences/s | hcore ÷ peer |\n|---|---|---|")
        print(f"| hcore (heads and MLPs skipped) | {sub[-1]['sequences_per_s']:.2f} | — |")
        for r in rem:
            print(f"| {r['engine']}, same heads physically removed (MLPs kept) | {r['per_s']:.2f} | {sub[-1]['sequences_per_s'] / r['per_s']:.2f}× |")

e2e = [r for r in rows if r.get("bench") == "hans_e2e"]
h = [r for r in e2e if r.get("engine") == "hcore"]
if h:
    hs = h[-1]["seconds"]
    print("\n| full HANS (30,000 pairs), minilm-nli, end to end incl. tokenization | seconds | pairs/s | hcore ÷ peer (speed) |\n|---|---|---|---|")
    print(f"| hcore eval (process wall time: load, tokenize, batches, metrics) | {hs:.1f} | {30000 / hs:.0f} | — |")
    for r in e2e:
        if r.get("engine") != "hcore":
            print(f"| {r['engine']} | {r['seconds']:.1f} | {30000 / r['seconds']:.0f} | {r['seconds'] / hs:.2f}× |")
for r in pick(bench="eval_many"):
    print(f"\n{r['subnetworks']} random subnetworks (50% of heads, 50% of MLPs) on {r['pairs']} HANS pairs: {r['actual_s']:.1f} s; "
          f"the sum of their FLOP-proportional times from the full model ({r['full_model_s']:.2f} s each at 100% FLOPs) is {r['flop_proportional_sum_s']:.1f} s: "
          f"**{r['actual_over_predicted']:.2f}×**.")
for r in pick(bench="prefix_sharing"):
    print(f"\nPrefix sharing ({r['subnetworks']} subnetworks in groups of 10 agreeing on layers 0–2, {r['pairs']} pairs): "
          f"{r['without_s']:.1f} s without, {r['with_s']:.1f} s with — **{100 * r['saving']:.0f}% saved** "
          f"({r['layer_runs']} layer runs instead of {r['layer_runs_unshared']}).")
