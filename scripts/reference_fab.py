#!/usr/bin/env python3
"""PyTorch reference for FAB-T (Croce & Hein, ICML 2020) on the committed demo model.

Usage (from the repository root; Debian's python3-torch):
    /usr/bin/python3 scripts/reference_fab.py [--count 100] [--threads 2]

Written from the FAB paper (the step of Section 3: projection onto the linearised decision
boundary intersected with the box, the convex combination with alpha <= alpha_max, overshoot eta,
backward step beta) and AutoAttack's FAB-T settings (9 target classes, the k-th most likely class
other than y at the clean input; 1 run per target, without random start; 100 iterations), with
PyTorch autograd for the gradient of z_t - z_y, independently of the TypeScript attack
(src/core/attacks/fab.ts) and of the generated ONNX gradients.

Unlike the TypeScript attack, which stops a sample at its first adversarial iterate within eps,
this runs every iteration as a minimum-norm attack: each run keeps the smallest adversarial
perturbation found, and a sample is fooled at eps when that norm is <= eps (AutoAttack's rule). A
sample fooled at some target is not attacked at the later ones. The projections are solved here by
sorting the breakpoints (the TypeScript side uses a partition search).

Runs, on the first --count demo test images:
  FAB-T  L-inf eps 0.03  and  L2 eps 1.0      (100 iterations per target, 9 target classes)
Writes test/fixtures/fab-reference.json: robust accuracy, per-sample robust flags (a sample
misclassified clean is not robust) and the smallest perturbation found per sample (null if none).

The torch module is rebuilt from the initializers of demo/fashion-cnn.onnx (scripts/demo_model.py),
so the fixture is tied to the committed ONNX file (modelSha256). Float32 on the CPU for the network,
float64 for the projections.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from demo_model import load_from_onnx, load_images, load_labels, sha256_file  # noqa: E402

STEPS = 100
TARGET_CLASSES = 9
ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9


def norm_of(v, norm):
    v = v.flatten(1)
    return v.abs().max(1).values if norm == "linf" else v.norm(dim=1)


def project(p, w, c, norm, lo=0.0, hi=1.0):
    """Displacement d of minimal norm with c + <w, d> = 0 and p + d in [lo, hi]^D, row-wise (float64).

    Each coordinate moves in the direction that brings the linear function to zero, s_i =
    -sign(c w_i), by at most its room r_i to the box. L-inf: d_i = s_i min(lam, r_i); L2 (KKT):
    d_i = s_i min(lam |w_i|, r_i). The change of the function, sum_i U_i min(lam, R_i) with (U, R) =
    (|w_i|, r_i) or (w_i^2, r_i / |w_i|), is piecewise linear in lam: sort the breakpoints R, find
    the first one where it reaches |c| and solve on that piece. If the full room does not reach |c|,
    every coordinate moves to its bound.
    """
    p, w, c = p.double(), w.double(), c.double()
    s = -torch.sign(c)[:, None] * torch.sign(w)
    room = torch.where(s > 0, hi - p, p - lo).clamp(min=0)
    a = w.abs()
    usable = (a > 0) & (room > 0)
    if norm == "linf":
        U, R = a, room
    else:
        U, R = a * a, room / torch.where(a > 0, a, torch.ones_like(a))
    U = torch.where(usable, U, torch.zeros_like(U))
    R = torch.where(usable, R, torch.zeros_like(R))
    need = c.abs()
    total = (U * R).sum(1)
    Rs, order = R.sort(dim=1)
    Us = U.gather(1, order)
    cum_ur = torch.cumsum(Us * Rs, 1)
    cum_u = torch.cumsum(Us, 1)
    tot_u = cum_u[:, -1:]
    # F at each breakpoint: saturated entries up to it plus the rest moving by R_(k).
    f_at = cum_ur + Rs * (tot_u - cum_u)
    k = (f_at < need[:, None]).sum(1).clamp(max=R.shape[1] - 1)  # first breakpoint with F >= need
    prev_ur = torch.where(k > 0, cum_ur.gather(1, (k - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(need))
    prev_u = torch.where(k > 0, cum_u.gather(1, (k - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(need))
    lam = (need - prev_ur) / (tot_u.squeeze(1) - prev_u)
    lam = torch.where(total > need, lam, torch.full_like(lam, float("inf")))
    step = torch.minimum(lam[:, None] if norm == "linf" else lam[:, None] * a, room)
    d = torch.where(usable, s * step, torch.zeros_like(step))
    return torch.where((need > 0)[:, None], d, torch.zeros_like(d))


def diff_and_grad(net, x, y, t):
    """z_t - z_y and its input gradient (autograd)."""
    x = x.clone().requires_grad_(True)
    z = net(x)
    f = z.gather(1, t[:, None]).squeeze(1) - z.gather(1, y[:, None]).squeeze(1)
    (g,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), g.detach()


def fab_run(net, x0, y, t, norm, n_iter=STEPS):
    """One FAB run towards t from x0 (no random start). Returns the smallest adversarial norm (inf if none)."""
    b = x0.shape[0]
    shape = x0.shape
    best = torch.full((b,), float("inf"), dtype=torch.float64)
    x1 = x0.clone()
    x0f = x0.flatten(1).double()
    for _ in range(n_iter):
        f, g = diff_and_grad(net, x1, y, t)
        w = g.flatten(1).double()
        x1f = x1.flatten(1).double()
        c1 = f.double()
        c0 = c1 + (w * (x0f - x1f)).sum(1)
        d1 = project(x1f, w, c1, norm)
        d2 = project(x0f, w, c0, norm)
        a1 = norm_of(d1, norm).clamp(min=1e-8)
        a2 = norm_of(d2, norm).clamp(min=1e-8)
        alpha = (a1 / (a1 + a2)).clamp(min=0, max=ALPHA_MAX)[:, None]
        x1 = ((x1f + ETA * d1) * (1 - alpha) + (x0f + ETA * d2) * alpha).clamp(0.0, 1.0).float().view(shape)
        with torch.no_grad():
            adv = net(x1).argmax(1) != y
        if adv.any():
            dist = norm_of((x1 - x0).double(), norm)
            best = torch.where(adv, torch.minimum(best, dist), best)
            x1 = torch.where(adv.view(-1, 1, 1, 1), x0 + BETA * (x1 - x0), x1)
    return best


def fab_t(net, x, y, eps, norm, target_classes=TARGET_CLASSES):
    """FAB-T: one run per target class; a sample fooled within eps is not attacked again."""
    with torch.no_grad():
        z = net(x)
    robust = z.argmax(1) == y
    smallest = torch.full((len(x),), float("inf"), dtype=torch.float64)
    order = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).argsort(dim=1, descending=True)
    for c in range(target_classes):
        idx = robust.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        best = fab_run(net, x[idx], y[idx], order[idx, c], norm)
        smallest[idx] = torch.minimum(smallest[idx], best)
        robust[idx[best <= eps]] = False
    return robust, smallest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "demo", "fashion-cnn.onnx"))
    ap.add_argument("--images", default=os.path.join(ROOT, "demo", "data", "t10k-images-idx3-ubyte.gz"))
    ap.add_argument("--labels", default=os.path.join(ROOT, "demo", "data", "t10k-labels-idx1-ubyte.gz"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "fab-reference.json"))
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    net = load_from_onnx(args.model)
    for p in net.parameters():
        p.requires_grad_(False)
    x = load_images(args.images, args.count)
    y = load_labels(args.labels, args.count)
    with torch.no_grad():
        clean = net(x).argmax(1) == y
    print(f"clean accuracy: {clean.float().mean().item():.4f}", flush=True)

    out = {
        "model": "demo/fashion-cnn.onnx",
        "modelSha256": sha256_file(args.model),
        "images": "demo/data/t10k-images-idx3-ubyte.gz",
        "labels": "demo/data/t10k-labels-idx1-ubyte.gz",
        "count": len(x),
        "torch": torch.__version__,
        "steps": STEPS,
        "targetClasses": TARGET_CLASSES,
        "restarts": 1,
        "alphaMax": ALPHA_MAX,
        "eta": ETA,
        "beta": BETA,
        "cleanAccuracy": clean.float().mean().item(),
        "runs": [],
    }
    for norm, eps in [("linf", 0.03), ("l2", 1.0)]:
        t0 = time.perf_counter()
        robust, smallest = fab_t(net, x, y, eps, norm)
        seconds = time.perf_counter() - t0
        acc = robust.float().mean().item()
        out["runs"].append({
            "attack": "fab-t", "norm": norm, "eps": eps, "accuracy": acc,
            "robust": [int(v) for v in robust.tolist()],
            "smallestPerturbation": [None if v == float("inf") else float(v) for v in smallest.tolist()],
            "seconds": seconds,
        })
        print(f"fab-t {norm} eps={eps}: robust accuracy {acc:.4f} ({seconds:.1f} s)", flush=True)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh)
        fh.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
