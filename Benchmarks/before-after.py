#!/usr/bin/env python3
"""Summarises Benchmarks/before-after.sh: per workload the best round of each build, new ÷ base, and both
against the peers measured in the same run (standard library only)."""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]

def best(build, bench, key, higher, **kw):
    vals = [r[key] for r in rows if r.get("build") == build and r.get("bench") == bench
            and all(r.get(k) == v for k, v in kw.items()) and key in r]
    return (max(vals) if higher else min(vals)) if vals else None

def peer(bench, engine, key, higher):
    vals = [r[key] for r in rows if r.get("bench") == bench and r.get("engine") == engine and "build" not in r and key in r]
    return (max(vals) if higher else min(vals)) if vals else None

peaks = [r["gflops"] for r in rows if r.get("bench") == "fma_peak" and r.get("threads") == 2]
print(f"FMA peak probe, 2 threads: {max(peaks):.0f} GFLOP/s (probes {', '.join(f'{p:.0f}' for p in peaks)})\n")
print("| workload | base | new | new ÷ base | new vs PyTorch | new vs ONNX Runtime |\n|---|---|---|---|---|---|")
lines = [
    ("minilm-nli HANS 2,048 pairs/s", ("hans", "pairs_per_s", True, {}), ("hans", "per_s", True)),
    ("bert-base T=128 B=32, full, seq/s", ("bert_base", "sequences_per_s", True, {"subnetwork": "full"}), ("bert_base", "per_s", True)),
    ("bert-base, 50% heads + 50% MLPs, seq/s", ("bert_base", "sequences_per_s", True, {"subnetwork": "heads50_mlps50"}), None),
    ("pruning step (B=32, T=128), s", ("prune_step", "seconds", False, {"engine": "hcore"}), ("prune_step", "seconds", False)),
    ("100 subnetworks × 512 pairs, prefix sharing, s", ("prefix_sharing", "with_s", False, {}), None),
    ("full HANS end to end (30,000 pairs), s", ("hans_e2e", "seconds", False, {"engine": "hcore"}), ("hans_e2e", "seconds", False)),
]
for label, (bench, key, higher, kw), peerspec in lines:
    b, n = best("base", bench, key, higher, **kw), best("new", bench, key, higher, **kw)
    if b is None or n is None:
        continue
    ratio = n / b if higher else b / n   # > 1: the new build is faster
    cells = []
    for engine in ("pytorch-eager", "onnxruntime"):
        p = peer(*peerspec[:1], engine, peerspec[1], peerspec[2]) if peerspec else None
        if p is None and peerspec and bench == "bert_base":
            p = peer(bench, engine, "per_s", True)
        cells.append("—" if p is None else f"{(n / p if higher else p / n):.2f}×")
    print(f"| {label} | {b:.4g} | {n:.4g} | {ratio:.3f} | {cells[0]} | {cells[1]} |")
print("\nnew ÷ base > 1 means the new build is faster; the peer columns are speed ratios (> 1: hcore faster).")
