#!/usr/bin/env python3
"""Reference training steps of the isometric head's loss (PyTorch autograd + torch.optim.Adam, CPU,
float32) for test/unit/isometric.test.ts.

    /usr/bin/python3 scripts/reference_isometric_step.py [--out test/fixtures/isometric-step-reference.json]

The network is a dense tail on an activation a: z = tanh(a @ W1 + b1), logits = z @ W2 + b2 (W as
[in, out], the layout the test's Gemm weights are read into). The loss is the metric-preservation
loss of arXiv:2211.01236 as the issue gives it (its code, MetricPreservationLoss):

    L = CE(logits, y) + lambda1 / B^2 * sum_{i,j} M_ij (lambda2 ||z_i - z_j|| - ||x_i - x_j||)^2,  M_ij = [y_i = y_j]

written here pair by pair (a Python loop over i != j; the diagonal terms are zero), independently of
the vectorised ONNX emission. Seeded initial parameters, three Adam steps on batches of 5, 4 and 6
samples with repeated labels; for each step the fixture holds the batch, the loss before the update
and the parameters after it.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN, HIDDEN, CLASSES, D = 6, 5, 4, 7
WEIGHT, SCALE, LR = 0.1, 10.0, 0.01
BATCHES = [5, 4, 6]


def isometric_loss(a, x, y, params):
    w1, b1, w2, b2 = params
    z = torch.tanh(a @ w1 + b1)
    logits = z @ w2 + b2
    ce = F.cross_entropy(logits, y)
    B = a.shape[0]
    iso = torch.zeros((), dtype=torch.float32)
    for i in range(B):
        for j in range(B):
            if i == j or int(y[i]) != int(y[j]):
                continue
            iso = iso + (SCALE * torch.linalg.norm(z[i] - z[j]) - torch.linalg.norm(x[i] - x[j])) ** 2
    return ce + WEIGHT * iso / (B * B)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "isometric-step-reference.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(15)
    init = [
        (rng.standard_normal((IN, HIDDEN)) * 0.5).astype(np.float32),
        (rng.standard_normal(HIDDEN) * 0.1).astype(np.float32),
        (rng.standard_normal((HIDDEN, CLASSES)) * 0.5).astype(np.float32),
        (rng.standard_normal(CLASSES) * 0.1).astype(np.float32),
    ]
    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = torch.optim.Adam(params, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    steps = []
    for rows in BATCHES:
        a = rng.standard_normal((rows, IN)).astype(np.float32)
        x = rng.uniform(0, 1, (rows, D)).astype(np.float32)
        y = rng.integers(0, 2, rows).astype(np.int64)  # two classes of four: many within-class pairs
        opt.zero_grad()
        loss = isometric_loss(torch.tensor(a), torch.tensor(x), torch.tensor(y), params)
        loss.backward()
        opt.step()
        steps.append({
            "rows": rows,
            "a": a.flatten().tolist(),
            "x": x.flatten().tolist(),
            "labels": y.tolist(),
            "loss": float(loss.item()),
            "params": [p.detach().numpy().flatten().tolist() for p in params],
        })
    out = {
        "generator": "scripts/reference_isometric_step.py",
        "torch": torch.__version__,
        "config": {"inputs": IN, "hidden": HIDDEN, "classes": CLASSES, "inputSize": D, "weight": WEIGHT, "scale": SCALE, "learningRate": LR},
        "init": [p.flatten().tolist() for p in init],
        "steps": steps,
    }
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"wrote {args.out}: {len(steps)} steps, losses {[round(s['loss'], 6) for s in steps]}")


if __name__ == "__main__":
    main()
