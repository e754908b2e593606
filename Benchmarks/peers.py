#!/usr/bin/env python3
"""The peers' side of BENCHMARKS.md: PyTorch eager and ONNX Runtime on the workloads hcore-bench runs.

Run it from a throwaway venv (pip install torch transformers onnxruntime onnx) — never part of hcore:
    python Benchmarks/peers.py hans   --model Tests/Fixtures/models/minilm-nli [--pairs 2048]
    python Benchmarks/peers.py bert-base --model /tmp/hcore-bert-base-random [--mask-json '{"heads":…}']
    python Benchmarks/peers.py prune-step --model Tests/Fixtures/models/minilm-nli [--batch 32 --length 128] [--gates TRACE [--ramp 0,25,50,75]]
Both engines use 2 threads; ONNX Runtime with all graph optimisations. Batches are identical to hcore's:
HANS pairs tokenized by the HF fast tokenizer (max_length 128, longest_first), sorted by length (stable),
cut into batches of 32, each padded to its longest sequence (dynamic padding).
Prints one JSON object per measurement.
"""
import argparse, json, math, os, sys, tempfile, time

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

THREADS = 2
torch.set_num_threads(THREADS)




def read_hans(pairs):
    import subprocess
    raw = subprocess.run(["zstd", "-dc", "data/hans/heuristics_evaluation_set.txt.zst"], check=True, capture_output=True).stdout
    rows = raw.decode().split("\n")[1:pairs + 1]
    return [(r.split("\t")[5], r.split("\t")[6]) for r in rows]


def make_batches(tok, pairs, batch_size=32):
    t0 = time.perf_counter()
    enc = [tok(a, b, truncation="longest_first", max_length=128) for a, b in pairs]
    tokenize = time.perf_counter() - t0
    order = sorted(range(len(enc)), key=lambda i: (len(enc[i]["input_ids"]), i))
    batches = []
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        T = max(len(enc[i]["input_ids"]) for i in idx)
        ids = np.zeros((len(idx), T), dtype=np.int64); tt = np.zeros_like(ids); am = np.zeros_like(ids)
        for r, i in enumerate(idx):
            n = len(enc[i]["input_ids"])
            ids[r, :n] = enc[i]["input_ids"]; tt[r, :n] = enc[i]["token_type_ids"]; am[r, :n] = 1
        batches.append((ids, tt, am))
    return batches, tokenize


def time_torch(model, batches, reps):
    with torch.inference_mode():
        model(input_ids=torch.from_numpy(batches[0][0]), token_type_ids=torch.from_numpy(batches[0][1]), attention_mask=torch.from_numpy(batches[0][2]))
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            for ids, tt, am in batches:
                model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(tt), attention_mask=torch.from_numpy(am))
            best = min(best, time.perf_counter() - t)
    return best


def export_onnx(model, path):
    ids = torch.ones((2, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.zeros_like(ids), torch.ones_like(ids)), path, dynamo=False,
                          input_names=["input_ids", "token_type_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": axes, "token_type_ids": axes, "attention_mask": axes}, opset_version=17)


def time_ort(path, batches, reps):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = lambda b: {"input_ids": b[0], "token_type_ids": b[1], "attention_mask": b[2]}
    sess.run(None, feed(batches[0]))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for b in batches:
            sess.run(None, feed(b))
        best = min(best, time.perf_counter() - t)
    return best


def remove_heads(model, prune):
    """Physically removes heads: slices Q/K/V rows and the output projection's columns (what
    transformers' old prune_heads did; transformers 5 no longer has it)."""
    for l, heads in prune.items():
        if not heads:
            continue
        att = model.bert.encoder.layer[l].attention
        sa, d = att.self, att.self.attention_head_size
        keep = [h for h in range(sa.num_attention_heads) if h not in heads]
        idx = torch.tensor([h * d + c for h in keep for c in range(d)])
        def rows(lin):
            new = torch.nn.Linear(lin.in_features, len(idx))
            new.weight.data = lin.weight.data[idx].clone(); new.bias.data = lin.bias.data[idx].clone()
            return new
        sa.query, sa.key, sa.value = rows(sa.query), rows(sa.key), rows(sa.value)
        out = att.output.dense
        new = torch.nn.Linear(len(idx), out.out_features)
        new.weight.data = out.weight.data[:, idx].clone(); new.bias.data = out.bias.data.clone()
        att.output.dense = new
        sa.num_attention_heads = len(keep)
        sa.all_head_size = len(idx)


def load(model_dir, attn="eager"):
    m = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation=attn)
    return m.eval()


def gate_states(trace, percents):
    """log α after the step at each percent of a run's sparsity ramp (hcore prune --trace), as hcore-bench reads it."""
    records = [json.loads(line) for line in open(trace) if line.strip()]
    final = records[-1]["target_sparsity"]
    ramp_end = next(i for i, r in enumerate(records) if r["target_sparsity"] >= final - 1e-12)
    out = []
    for p in percents:
        step = int(math.floor(p / 100 * ramp_end + 0.5))
        out.append((f"{p}% of ramp", step, records[step]["log_alpha"]))
    return out


def prune_step_time(model_dir, batch, length, reps, log_alpha=None):
    """One L0 pruning step with the reference modeling code's semantics (princeton-nlp/Heuristic-Core,
    src/pruning/modeling_pert.py): hard-concrete gates z sampled from log α (stretch (-0.1, 1.1), T 2/3) on
    every head's attention context before the output projection and on every MLP's output after its dense
    layer and dropout, with mean ablation; the subnetwork in training mode (dropout on), the full model in
    eval mode without gradients; loss KL(full || sub) + λ1 (t - s) + λ2 (t - s)^2; backward to log α and λ,
    weights frozen. Hooks on Hugging Face's BertForSequenceClassification give exactly those semantics."""
    model = load(model_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = model.config
    L, H, D = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
    d = D // H
    rng = np.random.default_rng(11)
    ids = rng.integers(1000, 21000, size=(batch, length), dtype=np.int64)
    ids[:, 0] = 101; ids[:, -1] = 102
    tt = np.zeros_like(ids); tt[:, length // 2:] = 1
    inputs = dict(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(tt), attention_mask=torch.ones_like(torch.from_numpy(ids)))
    log_alpha_heads = torch.full((L, H), 10.0).normal_(10.0, 0.01).requires_grad_(True)
    log_alpha_mlp = torch.full((L,), 10.0).normal_(10.0, 0.01).requires_grad_(True)
    if log_alpha is not None:  # hcore's unit order: heads layer-major, then one MLP per layer
        log_alpha_heads = torch.tensor(log_alpha[:L * H], dtype=torch.float32).view(L, H).requires_grad_(True)
        log_alpha_mlp = torch.tensor(log_alpha[L * H:], dtype=torch.float32).requires_grad_(True)
    lambdas = torch.zeros(2, requires_grad=True)
    avg_head = torch.randn(L, H, d) * 0.1
    avg_mlp = torch.randn(L, D) * 0.1
    state = {"zh": None, "zm": None}

    def sample(log_alpha):
        u = torch.zeros_like(log_alpha).uniform_(1e-6, 1 - 1e-6)
        s = torch.sigmoid((torch.log(u / (1 - u)) + log_alpha) / (2 / 3))
        return torch.clamp(s * 1.2 - 0.1, 0, 1)

    hooks = []
    for l, layer in enumerate(model.bert.encoder.layer):
        def head_hook(module, args, l=l):
            if state["zh"] is None:
                return None
            ctx = args[0]
            B, T, _ = ctx.shape
            c = ctx.view(B, T, H, d)
            c = (c - avg_head[l]) * state["zh"][l].view(1, 1, H, 1) + avg_head[l]
            return (c.reshape(B, T, D),) + args[1:]
        def mlp_hook(module, args, output, l=l):
            if state["zm"] is None:
                return None
            return (output - avg_mlp[l]) * state["zm"][l] + avg_mlp[l]
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(head_hook))
        hooks.append(layer.output.dropout.register_forward_hook(mlp_hook))

    def step():
        model.eval()
        state["zh"] = state["zm"] = None
        with torch.no_grad():
            full = torch.log_softmax(model(**inputs).logits, -1)
        model.train()
        state["zh"], state["zm"] = sample(log_alpha_heads), sample(log_alpha_mlp)
        sub = torch.log_softmax(model(**inputs).logits, -1)
        kl = torch.nn.functional.kl_div(sub, full, log_target=True, reduction="batchmean")
        s = 1 - (state["zh"].sum() + state["zm"].sum()) / (L * H + L)
        gap = 0.3 - s
        loss = kl + lambdas[0] * gap + lambdas[1] * gap * gap
        loss.backward()
        log_alpha_heads.grad = None; log_alpha_mlp.grad = None; lambdas.grad = None

    step()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["hans", "bert-base", "hans-e2e", "prune-step"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--gates", help="prune-step: a run's trace (hcore prune --trace); time the step at points of its ramp")
    ap.add_argument("--ramp", default="0,25,50,75", help="prune-step with --gates: percents of the sparsity ramp")
    ap.add_argument("--mask-json", help="heads to remove physically (prune_heads), for the subnetwork comparison")
    ap.add_argument("--engines", default="torch,ort")
    a = ap.parse_args()
    engines = a.engines.split(",")
    info = {"torch": torch.__version__, "threads": THREADS}
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass

    if a.workload == "prune-step":
        states = [("initial", 0, None)]
        if a.gates:
            states = gate_states(a.gates, [int(p) for p in a.ramp.split(",")])
        for label, step, la in states:
            median, best = prune_step_time(a.model, a.batch, a.length, max(3, a.reps), la)
            print(json.dumps({"bench": "prune_step", "engine": "pytorch-eager", "gates": label, "trace_step": step,
                              "batch": a.batch, "length": a.length, "seconds": median, "best_seconds": best, **info}), flush=True)
        return
    if a.workload == "hans-e2e":
        # Full HANS end to end, tokenization included: sorted batches (ORT, PyTorch) and a plain
        # transformers evaluation loop in file order (batch 32, each padded to its longest).
        pairs = read_hans(30000)
        tok = AutoTokenizer.from_pretrained(a.model)
        model = load(a.model)
        if "loop" in engines:
            t = time.perf_counter()
            with torch.inference_mode():
                for s0 in range(0, len(pairs), 32):
                    chunk = pairs[s0:s0 + 32]
                    enc = tok([p[0] for p in chunk], [p[1] for p in chunk], truncation="longest_first", max_length=128,
                              padding=True, return_tensors="pt")
                    model(**enc).logits.argmax(-1)
            t = time.perf_counter() - t
            print(json.dumps({"bench": "hans_e2e", "engine": "transformers-loop-file-order", "seconds": t, "per_s": len(pairs) / t, **info}), flush=True)
        for engine in [e for e in engines if e in ("torch", "ort")]:
            t0 = time.perf_counter()
            batches, _ = make_batches(tok, pairs)
            tokenize = time.perf_counter() - t0
            if engine == "torch":
                t = time_torch(model, batches, 1)
            else:
                with tempfile.TemporaryDirectory() as d:
                    p = os.path.join(d, "model.onnx")
                    export_onnx(model, p)
                    t = time_ort(p, batches, 1)
            total = tokenize + t
            print(json.dumps({"bench": "hans_e2e", "engine": "pytorch-eager" if engine == "torch" else "onnxruntime",
                              "seconds": total, "tokenize_s": tokenize, "per_s": len(pairs) / total, **info}), flush=True)
        return
    if a.workload == "hans":
        tok = AutoTokenizer.from_pretrained(a.model)
        batches, tokenize = make_batches(tok, read_hans(a.pairs))
        model = load(a.model)
        label = "hans"
        extra = {"pairs": a.pairs, "tokenize_s": tokenize}
        count = a.pairs
    else:
        rng = np.random.default_rng(7)
        ids = rng.integers(1000, 21000, size=(a.batch, a.length), dtype=np.int64)
        ids[:, 0] = 101; ids[:, -1] = 102
        batches = [(ids, np.zeros_like(ids), np.ones_like(ids))]
        model = load(a.model)
        label = "bert_base"
        extra = {"batch": a.batch, "length": a.length}
        count = a.batch
        if a.mask_json:
            mask = json.loads(a.mask_json)
            prune = {l: [h for h, v in enumerate(row) if v == 0] for l, row in enumerate(mask["heads"])}
            remove_heads(model, prune)
            label = "bert_base_heads_removed"
            extra["heads_removed"] = sum(len(v) for v in prune.values())
    if "torch" in engines:
        t = time_torch(model, batches, a.reps)
        print(json.dumps({"bench": label, "engine": "pytorch-eager", "seconds": t, "per_s": count / t, **extra, **info}), flush=True)
    if "ort" in engines:
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.onnx")
            export_onnx(model, p)
            t = time_ort(p, batches, a.reps)
        print(json.dumps({"bench": label, "engine": "onnxruntime", "seconds": t, "per_s": count / t, **extra, **info}), flush=True)


if __name__ == "__main__":
    main()
