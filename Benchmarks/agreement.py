#!/usr/bin/env python3
"""Agreement of hcore's predictions with transformers on a whole HANS file (issue: eval exactness).

    hcore eval --model M --data data/hans/heuristics_evaluation_set.txt.zst --predictions /tmp/hcore-preds.jsonl
    python Benchmarks/agreement.py M /tmp/hcore-preds.jsonl
Runs transformers (fp32, eager attention) in file order, batch 32, and reports the fraction of identical
argmax predictions, the largest logit difference, and for every disagreement the reference's top-2 gap.
"""
import json, subprocess, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model_dir, preds_path = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)
raw = subprocess.run(["zstd", "-dc", "data/hans/heuristics_evaluation_set.txt.zst"], check=True, capture_output=True).stdout.decode()
pairs = [(r.split("\t")[5], r.split("\t")[6]) for r in raw.split("\n")[1:] if r]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
ref = []
with torch.inference_mode():
    for s in range(0, len(pairs), 32):
        c = pairs[s:s + 32]
        enc = tok([a for a, _ in c], [b for _, b in c], truncation="longest_first", max_length=128, padding=True, return_tensors="pt")
        ref += model(**enc).logits.tolist()
ours = [json.loads(l)["logits"] for l in open(preds_path)]
assert len(ours) == len(ref), (len(ours), len(ref))
argmax = lambda v: max(range(len(v)), key=lambda i: v[i])
agree = sum(argmax(a) == argmax(b) for a, b in zip(ours, ref))
maxdiff = max(abs(x - y) for a, b in zip(ours, ref) for x, y in zip(a, b))
gaps = []
for a, b in zip(ours, ref):
    if argmax(a) != argmax(b):
        s = sorted(b, reverse=True)
        gaps.append(s[0] - s[1])
print(json.dumps({"examples": len(ref), "agreement": agree / len(ref), "disagreements": len(ref) - agree,
                  "max_abs_logit_diff": maxdiff, "disagreement_top2_gaps": gaps}))
