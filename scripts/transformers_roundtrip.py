#!/usr/bin/env python3
"""Loads a folder written by `hcore finetune` / `hcore demo` with Hugging Face transformers and checks that
transformers' logits equal hcore's on a few pairs. Needs torch + transformers (a throwaway venv, never the
product):  python3 scripts/transformers_roundtrip.py demo-out/model [path/to/hcore]"""
import json, subprocess, sys, tempfile
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

folder = sys.argv[1]
hcore = sys.argv[2] if len(sys.argv) > 2 else ".build/release/hcore"
pairs = [("The doctor saw the lawyer .", "The lawyer saw the doctor ."),
         ("The artist near the banker slept .", "The banker slept ."),
         ("If the judges waited , the secretary ran .", "The judges waited ."),
         ("The actors recommended the senator .", "The senator recommended the actors .")]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
with torch.no_grad():
    enc = tok([p for p, _ in pairs], [h for _, h in pairs], padding=True, return_tensors="pt")
    ref = model(**enc).logits.numpy()
lines = "\n".join(json.dumps({"text": p, "text_pair": h}) for p, h in pairs) + "\n"
with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    f.write(lines)
out = subprocess.run([hcore, "predict", "--model", folder, "--jsonl", f.name], capture_output=True, text=True, check=True).stdout
ours = [json.loads(l)["logits"] for l in out.strip().split("\n")]
worst = max(abs(a - b) for r, o in zip(ref, ours) for a, b in zip(r, o))
print(f"transformers loaded {folder} ({model.config.architectures}); max |Δlogit| vs hcore = {worst:.2e}")
sys.exit(0 if worst < 1e-4 else 1)
