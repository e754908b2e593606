"""A physically pruned tiny-bert, made with transformers' own `prune_heads`, for the loader's test
(Tests/Fixtures/models/tiny-bert-pruned). Layer 0 loses heads 1 and 3, layer 1 loses head 0; transformers records
them in config.json's `pruned_heads` and drops their rows of Q/K/V and columns of W_O.

To keep the fixture small, model.safetensors holds every tensor except the word embeddings (unchanged by
pruning, 3.9 MB); the test takes those from Tests/Fixtures/models/tiny-bert. logits.json holds transformers'
logits for three pairs with their input ids.
transformers 5 removed head pruning (prune_heads, config pruned_heads), so this needs transformers 4.x:
  /tmp/peers/bin/pip install --target /tmp/tf4 "transformers==4.46.3" "tokenizers<0.21"
  PYTHONPATH=/tmp/tf4 /tmp/peers/bin/python scripts/make-pruned-fixture.py
"""
import json, os, torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

src, out = "Tests/Fixtures/models/tiny-bert", "Tests/Fixtures/models/tiny-bert-pruned"
torch.manual_seed(0)
model = AutoModelForSequenceClassification.from_pretrained(src, attn_implementation="eager").eval()
tok = AutoTokenizer.from_pretrained(src)
model.prune_heads({0: [1, 3], 1: [0]})
os.makedirs(out, exist_ok=True)
model.config.save_pretrained(out)
state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "bert.embeddings.word_embeddings.weight"}
save_file(state, f"{out}/model.safetensors")
pairs = [("The doctor saw the lawyer.", "The lawyer saw the doctor."), ("A man is eating.", "Nobody eats."), ("hello", None)]
cases = []
with torch.no_grad():
    for a, b in pairs:
        enc = tok(a, b, return_tensors="pt")
        cases.append({"text": a, "text_pair": b, "input_ids": enc["input_ids"][0].tolist(), "logits": model(**enc).logits[0].tolist()})
json.dump({"transformers": __import__("transformers").__version__, "torch": torch.__version__, "cases": cases}, open(f"{out}/logits.json", "w"), indent=1)
print("wrote", out, json.load(open(f"{out}/config.json"))["pruned_heads"])
