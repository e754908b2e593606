#!/usr/bin/env python3
"""Turns the JSON lines of Benchmarks/run.sh into the tables of BENCHMARKS.md (standard library only).
Every engine's best round is reported (the machine's speed drifts between rounds), with the worst beside it."""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]

def pick(**kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

def best(rs, key, higher=True):
    vals = [r[key] for r in rs]
    return (max(vals), min(vals)) if higher else (min(vals), max(vals))

def spread(b, w):
    return "" if len(set([b, w])) == 1 else f" (worst round {w:.3g})"

peak = max(r["gflops"] for r in pick(bench="fma_peak", threads=2))
print(f"FMA peak probe, 2 threads: {peak:.0f} GFLOP/s, best of {len(pick(bench='fma_peak', threads=2))} probes "
      f"(1 thread: {max(r['gflops'] for r in pick(bench='fma_peak', threads=1)):.0f})\n")
print("| GEMM (M×N×K), 2 threads, best of 7 | GFLOP/s | FMA probes just before and after | % of that peak |\n|---|---|---|---|")
for r in pick(bench="gemm"):
    adj = r.get("adjacent_peak", peak)
    print(f"| {r['shape']} | {r['gflops']:.0f} | {adj:.0f} | {100 * r['gflops'] / adj:.0f}% |")

hans = [r for r in pick(bench="hans") if "engine" not in r]
if hans:
    h, hw = best([r for r in hans if r.get("variant") is None], "pairs_per_s")
    print(f"\n| minilm-nli, 2,048 HANS pairs, length-sorted batches of 32 | pairs/s, best round | hcore ÷ peer |\n|---|---|---|")
    print(f"| hcore | {h:.0f}{spread(h, hw)} | — |")
    allrows = [r for r in hans if r.get("variant") == "all_rows"]
    peers = sorted(set(r["engine"] for r in pick(bench="hans") if "engine" in r))
    for e in peers:
        p, pw = best([r for r in pick(bench="hans", engine=e)], "per_s")
        print(f"| {e} | {p:.0f}{spread(p, pw)} | {h / p:.2f}× |")
    if allrows:
        a, aw = best(allrows, "pairs_per_s")
        print(f"| hcore, every row of the last layer (HCORE_ALL_ROWS=1) | {a:.0f}{spread(a, aw)} | "
              + ", ".join(f"{a / best(pick(bench='hans', engine=e), 'per_s')[0]:.2f}× {e}" for e in peers) + " |")
    tok = [r["tokenize_s"] for r in pick(bench="hans") if "engine" in r]
    if tok:
        print(f"\nTokenizing the 2,048 pairs: hcore {min(r['tokenize_s'] for r in hans) * 1000:.0f} ms, HF fast tokenizer (per pair calls) {min(tok) * 1000:.0f} ms.")

full = [r for r in pick(bench="bert_base") if r.get("subnetwork") == "full" and r.get("variant") is None]
if full:
    f = max(full, key=lambda r: r["sequences_per_s"])
    fw = min(r["sequences_per_s"] for r in full)
    print("\n| bert-base, batch 32 × length 128 | sequences/s, best round | hcore ÷ peer |\n|---|---|---|")
    print(f"| hcore | {f['sequences_per_s']:.2f}{spread(f['sequences_per_s'], fw)} ({f['gflops']:.0f} GFLOP/s of work done, "
          f"{100 * f['gflops'] / peak:.0f}% of peak; {f.get('gflops_standard_count', f['gflops']):.0f} counted as the full model) | — |")
    peers = sorted(set(r["engine"] for r in rows if r.get("bench") == "bert_base" and "engine" in r))
    for e in peers:
        p, pw = best([r for r in rows if r.get("bench") == "bert_base" and r.get("engine") == e], "per_s")
        print(f"| {e} | {p:.2f}{spread(p, pw)} | {f['sequences_per_s'] / p:.2f}× |")
    allrows = [r for r in pick(bench="bert_base") if r.get("variant") == "all_rows"]
    if allrows:
        a, aw = best(allrows, "sequences_per_s")
        print(f"| hcore, every row of the last layer (HCORE_ALL_ROWS=1) | {a:.2f}{spread(a, aw)} | "
              + ", ".join(f"{a / best([r for r in rows if r.get('bench') == 'bert_base' and r.get('engine') == e], 'per_s')[0]:.2f}× {e}" for e in peers) + " |")
    print("\n| subnetwork of bert-base (mean ablation, compiled plan) | sequences/s | speed-up over full, same round | FLOP ratio | speed-up ÷ FLOP ratio, per round |\n|---|---|---|---|---|")
    for name in ["heads50_mlps50", "heads50", "all90"]:
        subs = [r for r in pick(bench="bert_base") if r.get("subnetwork") == name]
        if not subs:
            continue
        s = max(subs, key=lambda r: r["sequences_per_s"])
        ratios = ", ".join(f"{r['speedup_over_flop_ratio']:.2f}" for r in subs)
        print(f"| {name} | {s['sequences_per_s']:.2f} | {s['speedup']:.2f}× | {s['flop_ratio']:.2f} | {ratios} |")
    sub = [r for r in pick(bench="bert_base") if r.get("subnetwork") == "heads50_mlps50"]
    rem = [r for r in rows if r.get("bench") == "bert_base_heads_removed"]
    if sub and rem:
        s = max(r["sequences_per_s"] for r in sub)
        print("\n| heads50_mlps50 subnetwork | sequences/s, best round | hcore ÷ peer |\n|---|---|---|")
        print(f"| hcore (heads and MLPs skipped) | {s:.2f} | — |")
        for e in sorted(set(r["engine"] for r in rem)):
            p, pw = best([r for r in rem if r["engine"] == e], "per_s")
            print(f"| {e}, same heads physically removed (MLPs kept) | {p:.2f}{spread(p, pw)} | {s / p:.2f}× |")

ps = pick(bench="prune_step")
if ps:
    print("\n| one pruning step, minilm-nli, batch 32 × length 128 | seconds, best round | peer ÷ hcore (speed) |\n|---|---|---|")
    torch = [r for r in ps if r.get("engine") == "pytorch-eager"]
    t = min(r["seconds"] for r in torch) if torch else None
    for e in ["hcore-cached-full-model", "hcore", "pytorch-eager"]:
        rs = [r for r in ps if r.get("engine") == e]
        if rs:
            b, w = best(rs, "seconds", higher=False)
            label = {"hcore-cached-full-model": "hcore, full model's distribution cached per example (as `hcore prune` runs)",
                     "hcore": "hcore, full model recomputed every step", "pytorch-eager": "PyTorch eager, reference semantics"}[e]
            print(f"| {label} | {b:.2f}{spread(b, w)} | {'—' if e == 'pytorch-eager' or t is None else f'{t / b:.2f}×'} |")

e2e = pick(bench="hans_e2e")
h = [r for r in e2e if r.get("engine") == "hcore"]
if h:
    hs, hw = best(h, "seconds", higher=False)
    print("\n| full HANS (30,000 pairs), minilm-nli, end to end incl. tokenization | seconds | pairs/s | hcore ÷ peer (speed) |\n|---|---|---|---|")
    print(f"| hcore eval (process wall time: load, tokenize, batches, metrics) | {hs:.1f}{spread(hs, hw)} | {30000 / hs:.0f} | — |")
    for e in sorted(set(r["engine"] for r in e2e if r.get("engine") != "hcore")):
        p, pw = best([r for r in e2e if r["engine"] == e], "seconds", higher=False)
        print(f"| {e} | {p:.1f}{spread(p, pw)} | {30000 / p:.0f} | {p / hs:.2f}× |")
for r in pick(bench="eval_many"):
    print(f"\n{r['subnetworks']} random subnetworks (50% of heads, 50% of MLPs) on {r['pairs']} HANS pairs: {r['actual_s']:.1f} s; "
          f"the sum of their FLOP-proportional times from the full model (best {r['full_model_s']:.2f} s at 100% FLOPs; "
          f"timed again after every 10 subnetworks) is {r['flop_proportional_sum_s']:.1f} s: "
          f"**{r['actual_over_predicted']:.2f}×**.")
for r in pick(bench="prefix_sharing"):
    print(f"\nPrefix sharing ({r['subnetworks']} subnetworks in groups of 10 agreeing on layers 0–2, {r['pairs']} pairs): "
          f"{r['without_s']:.1f} s without, {r['with_s']:.1f} s with — **{100 * r['saving']:.0f}% saved** "
          f"({r['layer_runs']} layer runs instead of {r['layer_runs_unshared']}).")
