"""Writes Tests/Fixtures/attention/minilm-nli.json: transformers' attention probabilities (output_attentions,
eager attention) of models/minilm-nli for one short pair, [layer][head][query][key], to test
`hcore circuits attention`. Run with the peers' venv (torch + transformers), not in CI:
    /tmp/peers/bin/python scripts/make-attention-fixture.py
"""
import json, pathlib, torch
from transformers import AutoTokenizer, AutoModelForSequenceClassification

root = pathlib.Path(__file__).resolve().parent.parent
folder = root / "Tests/Fixtures/models/minilm-nli"
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
text, pair = "The doctor near the actor saw the lawyer .", "The actor saw the lawyer ."
enc = tok(text, pair, return_tensors="pt")
with torch.no_grad():
    out = model(**enc, output_attentions=True)
attn = [[[[round(v, 7) for v in row] for row in head] for head in layer[0].tolist()] for layer in out.attentions]
doc = {"model": "models/minilm-nli", "made_by": "scripts/make-attention-fixture.py", "transformers": __import__("transformers").__version__,
       "text": text, "text_pair": pair, "input_ids": enc["input_ids"][0].tolist(), "attentions": attn}
(root / "Tests/Fixtures/attention/minilm-nli.json").write_text(json.dumps(doc) + "\n")
print(len(attn), len(attn[0]), len(attn[0][0]))
