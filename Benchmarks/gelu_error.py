"""Worst error of PyTorch's GELU on this machine, on the grid hcore's GELU test sweeps (every 1e-4 over
[−14, 14]), as |error| / max(1, |x|) against the exact value from math.erf in double precision:

    /tmp/peers/bin/python Benchmarks/gelu_error.py

hcore's bound (Tests/KernelsTests, testGELUMatchesErfForm) is set against these figures.
"""
import math

import numpy as np
import torch

torch.set_num_threads(1)
x = (np.arange(-140000, 140000) * 1e-4).astype(np.float32)
exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
scale = np.maximum(1, np.abs(x.astype(np.float64)))
for name, fn in [("torch.nn.functional.gelu (what transformers' BERT calls)", torch.nn.functional.gelu),
                 ("0.5·x·(1 + torch.erf(x/√2)) in fp32", lambda t: 0.5 * t * (1 + torch.erf(t * 0.7071067811865476)))]:
    got = fn(torch.from_numpy(x)).numpy().astype(np.float64)
    err = np.abs(got - exact) / scale
    print(f"{name}: worst {err.max():.3e} at x = {x[err.argmax()]:.4f}")
