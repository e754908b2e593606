#!/usr/bin/env python3
"""Makes Tests/Fixtures/golden/reference-run: one pruned run of the reference built and evaluated by the reference's
own code, for hcore to reproduce from the same folder.

The run folder is what src/pruning/prune-glue.py saves: PertForSequenceClassification (src/pruning/modeling_pert.py,
whose gates are src/pruning/l0.py's) with log_alpha_heads / log_alpha_mlp set to fixed values — some kept, some
pruned, some in between, so the deterministic rule's soft values matter — and saved with save_pretrained. It is then
evaluated by the reference's scripts/eval/eval-hans-pruned-model.py, run as its README says (from the checkout, no
-t, so the deterministic soft masks), with mean activations from a pickle written as save-avg-activations.py writes
them. The fixture keeps the log α, the activation pickle and the reference's accuracy per HANS case with the
subnetwork's sparsity as the reference's tables record them (1 − Σ mask / units), in the shape of its data/eval
files; hcore builds the same folder from the same weights and compares (Tests/CLITests/ReferenceRunCLITests.swift).

    python3 scripts/make-reference-run-golden.py REFERENCE_CHECKOUT MODEL_DIR CASES_DIR OUT
      REFERENCE_CHECKOUT  a checkout of princeton-nlp/Heuristic-Core (src/pruning, scripts/eval)
      MODEL_DIR           Tests/Fixtures/models/minilm-nli
      CASES_DIR           Tests/Fixtures/reference/datasets/hans-cases
Needs torch, transformers 4.x, datasets and numpy.
"""
import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np


def main(reference, model_dir, cases_dir, out):
    reference, model_dir, cases_dir, out = map(os.path.abspath, (reference, model_dir, cases_dir, out))
    sys.path.insert(0, os.path.join(reference, "src", "pruning"))
    import torch
    from modeling_pert import PertForSequenceClassification, get_mask

    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp()
    run = os.path.join(work, "mnli-seed7mean-50")
    model = PertForSequenceClassification.from_pretrained(model_dir)
    config = model.config
    L, H = config.num_hidden_layers, config.num_attention_heads
    d, D = config.hidden_size // H, config.hidden_size
    rng = np.random.default_rng(2024)
    choices = np.array([8.0, 6.0, 3.0, 1.0, 0.0, -1.0, -3.0, -8.0])
    heads = rng.choice(choices, size=(L, H))
    mlps = rng.choice(choices[:5], size=L)
    with torch.no_grad():
        for l, layer in enumerate(model.bert.encoder.layer):
            layer.attention.self.log_alpha_heads.copy_(torch.tensor(heads[l], dtype=torch.float32))
            layer.output.log_alpha_mlp.copy_(torch.tensor([mlps[l]], dtype=torch.float32))
    model.save_pretrained(run)
    for f in ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"]:
        if os.path.exists(os.path.join(model_dir, f)):
            shutil.copy(os.path.join(model_dir, f), run)
    units, kept = 0, 0.0
    for name, p in model.named_parameters():
        if "log_alpha" in name:
            mask = get_mask(p)
            units += mask.numel()
            kept += mask.sum().item()

    activations = {}
    for l in range(L):
        activations[f"bert.encoder.layer.{l}.attention.self"] = rng.normal(0, 0.3, size=(H, d)).astype(np.float32)
        activations[f"bert.encoder.layer.{l}.output"] = rng.normal(0, 0.3, size=D).astype(np.float32)
    pickle_path = os.path.join(out, "activations.pkl")
    with open(pickle_path, "wb") as f:
        pickle.dump(activations, f, protocol=4)

    script = os.path.join(reference, "scripts", "eval", "eval-hans-pruned-model.py")
    done = subprocess.run(
        [sys.executable, script, "-m", run, "-a", pickle_path, "-hp", cases_dir, "-p", "-d", "cpu"],
        cwd=reference, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr)
    printed = done.stdout
    accuracies = {}
    for line in printed.splitlines():
        case, _, value = line.rpartition(": ")
        if case and case in os.listdir(cases_dir):
            accuracies[case] = float(value)
    table = {"seed": ["7"], "sparsity": [round(1 - kept / units, 4)]}
    table.update({case: [accuracies[case]] for case in sorted(accuracies)})
    with open(os.path.join(out, "log_alpha.json"), "w") as f:
        json.dump({"heads": heads.tolist(), "mlps": mlps.tolist()}, f)
    with open(os.path.join(out, "expected-row.json"), "w") as f:
        json.dump(table, f, indent=1)
    print(json.dumps(table))
    shutil.rmtree(work)


if __name__ == "__main__":
    main(*sys.argv[1:5])
