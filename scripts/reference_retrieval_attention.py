#!/usr/bin/env python3
"""Reference training steps of the retrieval defense's learned attention (PyTorch autograd +
torch.optim.Adam, CPU, float64) for test/unit/retrieval-attention.test.ts.

    /usr/bin/python3 scripts/reference_retrieval_attention.py [--out test/fixtures/retrieval-attention-reference.json]

Written from the paper's formulas (docs/papers.md §3), independently of the TypeScript graph: for a
sample row [h; h_1 … h_N; y_1 … y_N],
    β_n = s · hᵀ U h_n,  α = softmax(β),  h̄ = Σ α_n h_n,  ȳ = Σ α_n y_n
and either the paper head, logits = dense layers (ReLU between) on ([h̄; ȳ] − mean) · invStd, or the
tail head's objective, logits = log(ȳ + 1e-12); loss = mean softmax cross-entropy on the labels.
U and the dense layers are trained by Adam (β1 0.9, β2 0.999, ε 1e-7, learning rate 2e-3 as the fit).
Each sample's own class is among its neighbours' labels (as retrieval finds it). Each case holds the batch,
the initial parameters and, for each step, the loss before the update and the parameters after it.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPS_LOG = 1e-12


def forward(params, x, D, N, C, scale, head, mean, inv_std):
    U = params[0]
    h = x[:, :D]
    hn = x[:, D : D + N * D].reshape(-1, N, D)
    yn = x[:, D + N * D :].reshape(-1, N, C)
    beta = scale * torch.einsum("bj,jk,bnk->bn", h, U, hn)
    alpha = torch.softmax(beta, dim=1)
    hbar = torch.einsum("bn,bnd->bd", alpha, hn)
    ybar = torch.einsum("bn,bnc->bc", alpha, yn)
    if not head:
        return torch.log(ybar + EPS_LOG)
    f = (torch.cat([hbar, ybar], dim=1) - mean) * inv_std
    layers = params[1:]
    for i in range(0, len(layers), 2):
        f = f @ layers[i] + layers[i + 1]
        if i + 2 < len(layers):
            f = torch.relu(f)
    return f


def case(name, rng, head, D=6, N=3, C=4, B=5, hidden=5, steps=3, lr=2e-3):
    x = np.zeros((B, D + N * D + N * C))
    x[:, : D + N * D] = rng.normal(0, 1, (B, D + N * D))
    x[:, : D + N * D] = np.maximum(x[:, : D + N * D], 0)  # activations after a ReLU
    labels = rng.integers(C, size=B)
    for b in range(B):
        # The sample's own class among its neighbours' (as retrieval finds it), the others random.
        own = rng.integers(N)
        for n in range(N):
            x[b, D + N * D + n * C + (labels[b] if n == own else rng.integers(C))] = 1
    scale = 1 / np.sqrt(D)
    U0 = np.eye(D) + rng.normal(0, 0.3, (D, D))
    shapes = [(D, D)]
    init = [U0]
    mean = rng.normal(0, 0.2, D + C)
    inv_std = rng.uniform(0.5, 2, D + C)
    if head:
        init += [rng.uniform(-0.5, 0.5, (D + C, hidden)), rng.uniform(-0.1, 0.1, hidden), rng.uniform(-0.5, 0.5, (hidden, C)), rng.uniform(-0.1, 0.1, C)]
    # float32 values throughout (the ONNX side is float32), computed in float64.
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
    x, init, mean, inv_std = f32(x), [f32(p) for p in init], f32(mean), f32(inv_std)
    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7)
    xt = torch.tensor(x)
    yt = torch.tensor(labels)
    out_steps = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(forward(params, xt, D, N, C, float(np.float32(scale)), head, torch.tensor(mean), torch.tensor(inv_std)), yt)
        loss.backward()
        opt.step()
        out_steps.append({"loss": float(loss), "params": [p.detach().numpy().ravel().tolist() for p in params]})
    return {
        "name": name,
        "head": head,
        "D": D,
        "N": N,
        "C": C,
        "hidden": hidden if head else None,
        "scale": float(np.float32(scale)),
        "learningRate": lr,
        "x": x.ravel().tolist(),
        "labels": labels.tolist(),
        "mean": mean.tolist(),
        "invStd": inv_std.tolist(),
        "init": [p.ravel().tolist() for p in init],
        "steps": out_steps,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test/fixtures/retrieval-attention-reference.json"))
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(15)
    cases = [case("paper head", rng, True), case("tail objective", rng, False)]
    with open(args.out, "w") as f:
        json.dump({"generator": "scripts/reference_retrieval_attention.py", "torch": torch.__version__, "cases": cases}, f)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
