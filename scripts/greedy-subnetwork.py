#!/usr/bin/env python3
"""Does the model have a sparse subnetwork (heads + MLPs, mean ablation) whose KL to the full model is far below
that of random ones? A pruning-free existence check for issue 8's validation, independent of the L0 optimiser.

Iterative removal: at each step the 6 kept units whose removal the mask gradient rates cheapest (first order:
ΔKL ≈ −∂KL/∂z) are each removed in turn and the real KL measured on training pairs; the cheapest goes. At the
full mask every gradient is 0 (the KL's minimum), so the first step tries the MLPs and each layer's head 0.
Prints one line per removal, then the final subnetwork's KL on the evaluation pairs.

  scripts/greedy-subnetwork.py HCORE MODEL ACTIVATIONS WORKDIR [KEEP=39]
  e.g. scripts/greedy-subnetwork.py .build/release/hcore Tests/Fixtures/models/minilm-nli /tmp/v/acts.safetensors /tmp/g
(~25 s per removal on 2 cores; ACTIVATIONS from `hcore activations`, as scripts/validate-prune.sh makes them.)
"""
import json, os, subprocess, sys

hcore, model, acts, work = sys.argv[1:5]
keep_target = int(sys.argv[5]) if len(sys.argv) > 5 else 39
train, evaluation = "data/hans/heuristics_train_set.txt.zst", "data/hans/heuristics_evaluation_set.txt.zst"
os.makedirs(work, exist_ok=True)
layers, heads = (lambda c: (c["num_hidden_layers"], c["num_attention_heads"]))(json.load(open(f"{model}/config.json")))

def measure(mask, data=train, n=400):
    path = f"{work}/mask.json"
    json.dump(mask, open(path, "w"))
    out = subprocess.run([hcore, "importance", "--model", model, "--data", data, "--max-examples", str(n), "--mask", path,
                          "--activations", acts, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)

units = [("h", l, h) for l in range(layers) for h in range(heads)] + [("m", l) for l in range(layers)]
def mask_of(kept):
    return {"heads": [[1 if ("h", l, h) in kept else 0 for h in range(heads)] for l in range(layers)],
            "mlps": [1 if ("m", l) in kept else 0 for l in range(layers)]}

kept = set(units)
while len(kept) > keep_target:
    r = measure(mask_of(kept))
    grad = {u: r["heads"][u[1]][u[2]] if u[0] == "h" else r["mlps"][u[1]] for u in kept}
    if len(kept) == len(units):
        candidates = [("m", l) for l in range(layers)] + [("h", l, 0) for l in range(layers)]
    else:
        candidates = sorted(kept, key=lambda u: -grad[u])[:6]
    best = min(candidates, key=lambda u: measure(mask_of(kept - {u}))["loss"])
    kept.remove(best)
    print(len(kept), best, "KL before this removal", r["loss"], flush=True)
final = mask_of(kept)
json.dump(final, open(f"{work}/greedy.json", "w"))
print(json.dumps({"subnetwork": "greedy", "kept_heads": sum(map(sum, final["heads"])), "kept_mlps": sum(final["mlps"]),
                  "kl": measure(final, evaluation, 1000)["loss"], "mask": final}), flush=True)
