"""Fits the rational erf of Kernels/Elementwise.swift `gelu16`: erf(z) ≈ z·P(z²)/Q(z²), P and Q of degree 5,
on [0, 3.9], and checks the GELU built from it in emulated fp32 (every 1e-4 over [−14, 14]).

Development tool, not part of the product or the tests (needs numpy):  python3 scripts/fit_gelu_erf.py
Method: linearised least squares for P − f·Q (Q's constant term 1), reweighted each round by the previous
denominator and the error (Loeb/Lawson), keeping the round with the smallest maximum error.
"""
import math
import numpy as np

ZMAX, DEG_P, DEG_Q = 3.9, 5, 5


def fit(rounds=60, n=4000):
    z = ZMAX * (1 - np.cos(np.pi * (np.arange(n) + 0.5) / n)) / 2   # Chebyshev points on [0, ZMAX]
    s = z * z
    f = np.array([math.erf(v) / v for v in z])                        # erf(z)/z, a function of s
    weight, q_prev, best = np.ones(n), np.ones(n), None
    for _ in range(rounds):
        a = np.hstack([s[:, None] ** np.arange(DEG_P + 1), -f[:, None] * s[:, None] ** np.arange(1, DEG_Q + 1)])
        w = (weight * z / np.abs(q_prev))[:, None]                    # minimise |z·(P/Q − f)| = |Δerf|
        sol, *_ = np.linalg.lstsq(a * w, f * w[:, 0], rcond=None)
        p, q = sol[:DEG_P + 1], np.concatenate([[1.0], sol[DEG_P + 1:]])
        pv, qv = np.polyval(p[::-1], s), np.polyval(q[::-1], s)
        err = z * (pv / qv - f)
        if best is None or np.abs(err).max() < best[0]:
            best = (np.abs(err).max(), p, q)
        q_prev = qv
        weight = weight * np.sqrt(np.abs(err)) + 1e-300
        weight /= weight.sum()
    return best


def fma32(a, b, c):
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def gelu32(x, p, q):
    """gelu16's operations in fp32, fused multiply-adds where it uses them."""
    f32 = np.float32
    z = np.clip((x * f32(0.70710678118654752)).astype(f32), f32(-ZMAX), f32(ZMAX))
    s = (z * z).astype(f32)
    pv = np.full_like(s, p[-1])
    for c in p[-2::-1]:
        pv = fma32(pv, s, np.full_like(s, c))
    qv = np.full_like(s, q[-1])
    for c in q[-2::-1]:
        qv = fma32(qv, s, np.full_like(s, c))
    erf = ((z * pv).astype(f32) / qv).astype(f32)
    half = (f32(0.5) * x).astype(f32)
    return fma32(half, erf, half)


if __name__ == "__main__":
    approx, p, q = fit()
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    print(f"max |Δerf| on [0, {ZMAX}] in double: {approx:.2e}")
    print("P:", ", ".join(f"{c:.9e}" for c in p32))
    print("Q:", ", ".join(f"{c:.9e}" for c in q32))
    x = (np.arange(-140000, 140000) * 1e-4).astype(np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    got = gelu32(x, p32, q32).astype(np.float64)
    scale = np.maximum(1, np.abs(x.astype(np.float64)))
    print(f"gelu, emulated fp32: worst |error|/max(1,|x|) {np.max(np.abs(got - exact) / scale):.3e} against the exact value,"
          f" {np.max(np.abs(got - exact.astype(np.float32)) / scale):.3e} against the correctly rounded one")
