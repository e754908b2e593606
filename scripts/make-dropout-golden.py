#!/usr/bin/env python3
"""Makes Tests/Fixtures/golden/dropout-training: transformers' BertForSequenceClassification in training mode with
dropout on (hidden 0.3, attention probabilities 0.3), on a tiny random BERT, with every dropout mask fixed to the
multipliers hcore draws — SplitMix64(seed) in hcore's order and layout (Model/BertPass.swift): the embeddings, every
layer's attention output, every layer's MLP output, the pooled output, then every layer's attention probabilities.
Each nn.Dropout module is replaced by a multiplication with its mask, laid out into transformers' padded tensors, and
attention runs eagerly so that the probabilities' dropout is that module. The fixture holds the model folder, the
batch, the seed, and transformers' loss, logits and every parameter's gradient (cross-entropy, mean over the batch).

    python3 scripts/make-dropout-golden.py OUT_FOLDER      (needs torch and transformers 4.x)
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification

P = 0.3
SEED = 1234
MASK64 = (1 << 64) - 1


class SplitMix64:
    """hcore's Kernels/Random.swift, bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) / float(1 << 53)


def multipliers(rng, count, p):
    """hcore's dropoutMultipliers: 0 where uniform < p, else 1/(1 − p) computed in Float."""
    scale = np.float32(1) / (np.float32(1) - np.float32(p))
    threshold = float(np.float32(p))
    return np.array([0.0 if rng.uniform() < threshold else scale for _ in range(count)], dtype=np.float32)


def main(folder):
    config = BertConfig(
        vocab_size=23, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
        max_position_embeddings=16, hidden_dropout_prob=P, attention_probs_dropout_prob=P, num_labels=3,
        id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}, attn_implementation="eager",
    )
    torch.manual_seed(7)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # larger than the init, so every path carries gradient
    rng = np.random.default_rng(5)
    lengths = [5, 9, 3, 7]
    ids = [rng.integers(1, 23, size=n).tolist() for n in lengths]
    types = [[0] * (n // 2) + [1] * (n - n // 2) for n in lengths]
    labels = [0, 2, 1, 2]
    B, T, D, H, L = len(lengths), max(lengths), 16, 2, 2
    offsets = np.cumsum([0] + lengths)
    N = int(offsets[-1])
    prob_base = np.cumsum([0] + [H * n * n for n in lengths])

    draw = SplitMix64(SEED)
    embeddings = multipliers(draw, N * D, P)
    attention_out = [multipliers(draw, N * D, P) for _ in range(L)]
    mlp_out = [multipliers(draw, N * D, P) for _ in range(L)]
    pooled = multipliers(draw, B * D, P)
    probs = [multipliers(draw, int(prob_base[-1]), P) for _ in range(L)]

    def hidden_mask(flat):
        m = torch.ones(B, T, D)
        for s, n in enumerate(lengths):
            m[s, :n] = torch.from_numpy(flat[offsets[s] * D:(offsets[s] + n) * D].reshape(n, D))
        return m

    def probs_mask(flat):
        m = torch.ones(B, H, T, T)
        for s, n in enumerate(lengths):
            block = flat[prob_base[s]:prob_base[s + 1]].reshape(H, n, n)
            m[s, :, :n, :n] = torch.from_numpy(block)
        return m

    class Fixed(torch.nn.Module):
        def __init__(self, mask):
            super().__init__()
            self.mask = mask

        def forward(self, x):
            return x * self.mask

    model.bert.embeddings.dropout = Fixed(hidden_mask(embeddings))
    for l, layer in enumerate(model.bert.encoder.layer):
        layer.attention.self.dropout = Fixed(probs_mask(probs[l]))
        layer.attention.output.dropout = Fixed(hidden_mask(attention_out[l]))
        layer.output.dropout = Fixed(hidden_mask(mlp_out[l]))
    model.dropout = Fixed(torch.from_numpy(pooled.reshape(B, D)))

    input_ids = torch.zeros(B, T, dtype=torch.long)
    token_types = torch.zeros(B, T, dtype=torch.long)
    attention = torch.zeros(B, T, dtype=torch.long)
    for s, n in enumerate(lengths):
        input_ids[s, :n] = torch.tensor(ids[s])
        token_types[s, :n] = torch.tensor(types[s])
        attention[s, :n] = 1
    model.train()
    result = model(input_ids=input_ids, token_type_ids=token_types, attention_mask=attention, labels=torch.tensor(labels))
    result.loss.backward()

    os.makedirs(out_folder := os.path.join(folder, "model"), exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    save_file(weights, os.path.join(out_folder, "model.safetensors"), metadata={"format": "pt"})
    config.to_json_file(os.path.join(out_folder, "config.json"))
    grads = {"grad." + k: p.grad.detach().contiguous() for k, p in model.named_parameters()}
    save_file({**grads, "logits": result.logits.detach().contiguous()}, os.path.join(folder, "outputs.safetensors"))
    with open(os.path.join(folder, "batch.json"), "w") as f:
        json.dump({"input_ids": ids, "token_type_ids": types, "labels": labels, "seed": SEED, "dropout": P,
                   "loss": result.loss.item(), "transformers": __import__("transformers").__version__,
                   "torch": torch.__version__}, f, indent=1)
    print("loss", result.loss.item())


if __name__ == "__main__":
    main(sys.argv[1])
