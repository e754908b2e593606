"""Checks a subnetwork exported by `hcore store export --hf-folder` against hcore and measures it in ONNX Runtime.

  PYTHONPATH=/tmp/tf4 /tmp/peers/bin/python scripts/check-export.py EXPORT_DIR FULL_MODEL_DIR [HCORE]

transformers 5 removed head pruning, so an export with removed heads needs transformers 4.x (see
scripts/make-pruned-fixture.py for the install: PYTHONPATH=/tmp/tf4); an export made with --keep-shapes loads in
transformers 5 (plain /tmp/peers/bin/python). It loads EXPORT_DIR with AutoModelForSequenceClassification
(no weight may be missing or newly initialised), compares its logits on HANS pairs with `hcore predict` on the
same folder, exports both models to ONNX and prints ONNX Runtime's time for each (one thread, batch 1) and the
speed-up of the export. BENCHMARKS.md records one run.
"""
import json, os, subprocess, sys, tempfile, time
import numpy as np, torch, onnxruntime as ort
from transformers import AutoModelForSequenceClassification, AutoTokenizer

export, full = sys.argv[1], sys.argv[2]
hcore = sys.argv[3] if len(sys.argv) > 3 else ".build/release/hcore"
pairs = [("The doctor saw the lawyer.", "The lawyer saw the doctor."), ("The artist near the banker slept.", "The banker slept."),
         ("If the actor ran, the judge waited.", "The actor ran."), ("The manager knew the athlete mentioned the actor.", "The manager knew the athlete."),
         ("Clearly the author encouraged the actors.", "The author encouraged the actors.")] * 4
model, info = AutoModelForSequenceClassification.from_pretrained(export, attn_implementation="eager", output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
model.eval()
tok = AutoTokenizer.from_pretrained(export)
with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    for a, b in pairs: f.write(json.dumps({"text": a, "text_pair": b}) + "\n")
ours = [json.loads(l)["logits"] for l in subprocess.run([hcore, "predict", "--model", export, "--jsonl", f.name], capture_output=True, text=True, check=True).stdout.splitlines()]
with torch.no_grad():
    theirs = [model(**tok(a, b, return_tensors="pt")).logits[0].tolist() for a, b in pairs]
print(f"transformers {__import__('transformers').__version__}, pruned heads {getattr(model.config, 'pruned_heads', None)}")
print(f"max |logit difference| transformers vs hcore on the export: {np.abs(np.array(ours) - np.array(theirs)).max():.2e} over {len(pairs)} pairs")

def onnx_time(folder, name):
    m = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    enc = tok(pairs[0][0], pairs[0][1], return_tensors="pt")
    path = os.path.join(tempfile.mkdtemp(), name + ".onnx")
    torch.onnx.export(m, (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]), path, input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["logits"], dynamic_axes={k: {0: "b", 1: "t"} for k in ["input_ids", "attention_mask", "token_type_ids"]}, opset_version=17, dynamo=False)
    o = ort.SessionOptions(); o.intra_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    feeds = [{k: v.numpy() for k, v in tok(a, b, return_tensors="pt").items()} for a, b in pairs]
    for x in feeds[:5]: s.run(None, x)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for x in feeds: s.run(None, x)
        best = min(best, (time.perf_counter() - t) / len(feeds))
    return best, s.run(None, feeds[0])[0][0]
t_full, _ = onnx_time(full, "full")
t_export, logits = onnx_time(export, "export")
print(f"ONNX Runtime logits vs hcore: {np.abs(np.array(logits) - np.array(ours[0])).max():.2e}")
print(f"ONNX Runtime, 1 thread, batch 1: full {t_full * 1e3:.2f} ms/pair, export {t_export * 1e3:.2f} ms/pair, speed-up {t_full / t_export:.2f}x")
