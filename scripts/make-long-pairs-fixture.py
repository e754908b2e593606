"""Writes Tests/Fixtures/long-pairs/minilm-nli.json: pairs longer than 128 tokens with transformers' logits at
max_length 512 (what the reference's eval scripts do: truncation only at the model's limit) and at 128
(longest_first, hcore's default). Run with the peers' venv (torch + transformers), not in CI:
    /tmp/peers/bin/python scripts/make-long-pairs-fixture.py
"""
import json, pathlib, torch
from transformers import AutoTokenizer, AutoModelForSequenceClassification

root = pathlib.Path(__file__).resolve().parent.parent
folder = root / "Tests/Fixtures/models/minilm-nli"
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
base = "The senator who the doctors advised near the old library thanked the manager because the weather was cold and the students were tired after the long trip"
pairs = [
    (" , and ".join([base] * 6) + " .", "The senator thanked the manager ."),
    ("The lawyer saw the doctor .", " ; ".join([base] * 5) + " ."),
    (" and ".join([base] * 4), " but ".join([base] * 3)),
]
out = {"model": "models/minilm-nli", "made_by": "scripts/make-long-pairs-fixture.py", "transformers": __import__("transformers").__version__, "pairs": []}
for text, pair in pairs:
    row = {"text": text, "text_pair": pair}
    for n in (512, 128):
        enc = tok(text, pair, truncation="longest_first", max_length=n, return_tensors="pt")
        with torch.no_grad():
            row[f"logits_{n}"] = model(**enc).logits[0].tolist()
        row[f"length_{n}"] = int(enc["input_ids"].shape[1])
    out["pairs"].append(row)
(root / "Tests/Fixtures/long-pairs").mkdir(exist_ok=True)
(root / "Tests/Fixtures/long-pairs/minilm-nli.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps([{k: v for k, v in r.items() if k.startswith("length")} for r in out["pairs"]]))
