#!/usr/bin/env python3
"""PyTorch reference for APGD (Croce & Hein, ICML 2020) on the committed demo model.

Usage (from the repository root; Debian's python3-torch):
    /usr/bin/python3 scripts/reference_apgd.py [--count 200] [--threads 2]

Written from the paper (Algorithm 1, the checkpoint conditions of Section 3.2, the DLR losses of
Section 4) with PyTorch autograd for the gradients, independently of the TypeScript attack
(src/core/attacks/apgd.ts) and of the generated ONNX gradients. It makes the same reading choices,
listed in apgd.ts: a checkpoint w_j is taken once f(x^(w_j)) is known and a halving replaces
x^(w_j) by x_max (with its gradient); condition 2 at the first checkpoint compares with
f_max^(0) = f(x^(0)); N_iter gradients per run and a forward pass at x^(N_iter).

Runs, on the first --count demo test images, without random start (so both sides are
deterministic and a per-sample comparison is meaningful):
  APGD-CE  L-inf eps 0.03, 0.06; L2 eps 1.0   (100 iterations, 1 run)
  APGD-T   L-inf eps 0.03, 0.06               (100 iterations per target, 3 target classes)
and APGD-CE L-inf eps 0.06 from a seeded uniform random start (a different random stream from the
TypeScript side's: only the robust accuracy is comparable). Writes
test/fixtures/apgd-reference.json: robust accuracy per run and per-sample robust flags (a sample
misclassified clean is not robust), plus DLR / targeted-DLR input gradients of the first 4 images.

The torch module is rebuilt from the initializers of demo/fashion-cnn.onnx (scripts/demo_model.py),
so the fixture is tied to the committed ONNX file (modelSha256). Float32 on the CPU. About 40 s on
a quiet 2-core machine (60 s CPU); on a machine busy with other work, two OpenMP threads can be
ten times slower: --threads 1 then.
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
TARGET_CLASSES = 3
RHO = 0.75
ALPHA = 0.75


def checkpoints(n_iter):
    """w_j = ceil(p_j * n_iter) <= n_iter, p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).

    In whole hundredths (0.41 * 100 must give 41); repeated values dropped.
    """
    p = [0, 22]
    while p[-1] <= 100:
        p.append(p[-1] + max(p[-1] - p[-2] - 3, 6))
    w = []
    for pj in p:
        wj = -(-pj * n_iter // 100)
        if wj > n_iter:
            break
        if not w or wj > w[-1]:
            w.append(wj)
    return w


# ------------------------------------------------------------------ losses (per sample)

def ce_loss(z, y, t):
    return F.cross_entropy(z, y, reduction="none")


def dlr_loss(z, y, t):
    """-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12)."""
    zs, _ = z.sort(dim=1, descending=True)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).max(1).values
    return -(z_y - other) / (zs[:, 0] - zs[:, 2] + 1e-12)


def dlr_targeted_loss(z, y, t):
    """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)."""
    zs, _ = z.sort(dim=1, descending=True)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    z_t = z.gather(1, t[:, None]).squeeze(1)
    return -(z_y - z_t) / (zs[:, 0] - 0.5 * (zs[:, 2] + zs[:, 3]) + 1e-12)


LOSSES = {"ce": ce_loss, "dlr": dlr_loss, "dlr-targeted": dlr_targeted_loss}


# ------------------------------------------------------------------ geometry

def project(xa, x, eps, norm):
    """Onto the eps-ball around x (L-inf clip, or L2 radial scaling), then [0, 1]."""
    if norm == "linf":
        return torch.min(torch.max(xa, x - eps), x + eps).clamp(0.0, 1.0)
    delta = xa - x
    n = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    f = torch.where(n > eps, eps / torch.where(n > 0, n, torch.ones_like(n)), torch.ones_like(n))
    return (x + delta * f).clamp(0.0, 1.0)


def steepest(g, norm):
    if norm == "linf":
        return g.sign()
    n = g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return torch.where(n > 0, g / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(g))


# ------------------------------------------------------------------ APGD, Algorithm 1

def apgd_run(net, x, y, eps, norm, loss_name, t=None, n_iter=STEPS, x_init=None, stats=None):
    """One APGD run on a batch. Returns a bool tensor: misclassified at some iterate.

    A sample leaves the batch at its first misclassified iterate (its remaining iterates cannot
    change its outcome, and the other samples' iterates do not depend on it). `stats`, a dict,
    counts per-sample gradient evaluations under "gradients".
    """
    crit = LOSSES[loss_name]
    w = checkpoints(n_iter)
    b = x.shape[0]
    view = (-1, 1, 1, 1)
    fooled = torch.zeros(b, dtype=torch.bool)
    # Per-sample state of the active rows; `ids` maps them to the batch.
    s = {
        "ids": torch.arange(b), "x": x.clone(), "y": y.clone(), "t": None if t is None else t.clone(),
        "x_adv": (x if x_init is None else x_init).clone(),
        "eta": torch.full((b,), 2.0 * eps),
        "f_max": torch.full((b,), float("-inf")),
        "f_prev": torch.zeros(b), "f_max_at_check": torch.zeros(b),
        "increases": torch.zeros(b, dtype=torch.long),
        "halved_at_check": torch.zeros(b, dtype=torch.bool),
    }
    s["x_prev"] = s["x_adv"].clone()
    s["x_max"] = s["x_adv"].clone()
    s["g_max"] = torch.zeros_like(x)

    def evaluate(xa):
        xa = xa.clone().requires_grad_(True)
        z = net(xa)
        f = crit(z, s["y"], s["t"])
        (g,) = torch.autograd.grad(f.sum(), xa)
        return z.detach(), f.detach(), g.detach()

    for k in range(n_iter + 1):
        if len(s["ids"]) == 0:
            break
        if k == n_iter:
            with torch.no_grad():
                fooled[s["ids"]] |= net(s["x_adv"]).argmax(1) != s["y"]
            break
        z, f, g = evaluate(s["x_adv"])
        if stats is not None:
            stats["gradients"] = stats.get("gradients", 0) + len(s["ids"])
        done = z.argmax(1) != s["y"]
        fooled[s["ids"][done]] = True
        if done.any():
            keep = ~done
            for key, v in s.items():
                if v is not None:
                    s[key] = v[keep]
            f, g = f[keep], g[keep]
            if len(s["ids"]) == 0:
                break
        better = f > s["f_max"]
        s["f_max"] = torch.where(better, f, s["f_max"])
        s["x_max"][better] = s["x_adv"][better]
        s["g_max"][better] = g[better]
        if k > 0:
            s["increases"] += (f > s["f_prev"]).long()
        s["f_prev"] = f.clone()
        if k == 0:
            s["f_max_at_check"] = s["f_max"].clone()
        elif k in w:
            j = w.index(k)
            cond1 = s["increases"].float() < RHO * (w[j] - w[j - 1])
            cond2 = (~s["halved_at_check"]) & (s["f_max"] == s["f_max_at_check"])
            halve = cond1 | cond2
            s["halved_at_check"] = halve
            s["f_max_at_check"] = s["f_max"].clone()
            s["increases"].zero_()
            s["eta"] = torch.where(halve, s["eta"] / 2, s["eta"])
            s["x_adv"] = torch.where(halve.view(view), s["x_max"], s["x_adv"])
            g = torch.where(halve.view(view), s["g_max"], g)
            s["f_prev"] = torch.where(halve, s["f_max"], s["f_prev"])
        with torch.no_grad():
            xa, x0 = s["x_adv"], s["x"]
            z_next = project(xa + s["eta"].view(view) * steepest(g, norm), x0, eps, norm)
            if k > 0:
                z_next = project(xa + ALPHA * (z_next - xa) + (1 - ALPHA) * (xa - s["x_prev"]), x0, eps, norm)
            s["x_prev"] = xa
            s["x_adv"] = z_next
    return fooled


def random_start(x, eps):
    return (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0.0, 1.0)


def apgd_ce(net, x, y, eps, norm, rand=False, n_iter=STEPS, stats=None):
    """APGD-CE, one run; returns per-sample robust flags (correct clean and never fooled)."""
    with torch.no_grad():
        robust = net(x).argmax(1) == y
    idx = robust.nonzero().squeeze(1)
    xi, yi = x[idx], y[idx]
    fooled = apgd_run(net, xi, yi, eps, norm, "ce", x_init=random_start(xi, eps) if rand else None, n_iter=n_iter, stats=stats)
    robust[idx[fooled]] = False
    return robust


def apgd_t(net, x, y, eps, norm, target_classes=TARGET_CLASSES):
    """APGD-T: one run per target, the k-th most likely class other than y at the clean input."""
    with torch.no_grad():
        z = net(x)
    robust = z.argmax(1) == y
    # Classes by decreasing clean logit, y excluded.
    order = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).argsort(dim=1, descending=True)
    for c in range(target_classes):
        idx = robust.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        fooled = apgd_run(net, x[idx], y[idx], eps, norm, "dlr-targeted", t=order[idx, c])
        robust[idx[fooled]] = False
    return robust


def batched(fn, x, y, batch, *args, **kwargs):
    return torch.cat([fn(x[i:i + batch], y[i:i + batch], *args, **kwargs) for i in range(0, len(x), batch)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "demo", "fashion-cnn.onnx"))
    ap.add_argument("--images", default=os.path.join(ROOT, "demo", "data", "t10k-images-idx3-ubyte.gz"))
    ap.add_argument("--labels", default=os.path.join(ROOT, "demo", "data", "t10k-labels-idx1-ubyte.gz"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "apgd-reference.json"))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    started, cpu = time.perf_counter(), time.process_time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
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
        "rho": RHO,
        "momentum": ALPHA,
        "checkpoints100": checkpoints(100),
        "cleanAccuracy": clean.float().mean().item(),
        "runs": [],
    }

    def record(name, loss, norm, eps, robust, seconds, random_start=False):
        acc = robust.float().mean().item()
        out["runs"].append({"attack": name, "loss": loss, "norm": norm, "eps": eps, "randomStart": random_start,
                            "accuracy": acc, "robust": [int(v) for v in robust.tolist()]})
        print(f"{name} {norm} eps={eps}{' (random start)' if random_start else ''}: robust accuracy {acc:.4f} ({seconds:.1f} s)", flush=True)

    for norm, eps in [("linf", 0.03), ("linf", 0.06), ("l2", 1.0)]:
        t0 = time.perf_counter()
        robust = batched(lambda xb, yb: apgd_ce(net, xb, yb, eps, norm), x, y, args.batch)
        record("apgd-ce", "ce", norm, eps, robust, time.perf_counter() - t0)
    for eps in [0.03, 0.06]:
        t0 = time.perf_counter()
        robust = batched(lambda xb, yb: apgd_t(net, xb, yb, eps, "linf"), x, y, args.batch)
        record("apgd-t", "dlr-targeted", "linf", eps, robust, time.perf_counter() - t0)
    torch.manual_seed(args.seed)
    for eps in [0.06]:
        t0 = time.perf_counter()
        robust = batched(lambda xb, yb: apgd_ce(net, xb, yb, eps, "linf", rand=True), x, y, args.batch)
        record("apgd-ce", "ce", "linf", eps, robust, time.perf_counter() - t0, random_start=True)

    # DLR losses and their input gradients through autograd, first 4 images (targets: the most
    # likely class other than y).
    x4, y4 = x[:4].clone().requires_grad_(True), y[:4]
    z4 = net(x4)
    t4 = z4.detach().masked_fill(F.one_hot(y4, 10).bool(), float("-inf")).argmax(1)
    out["gradLabels"] = y4.tolist()
    out["gradTargets"] = t4.tolist()
    for name, fn in [("dlr", dlr_loss), ("dlrTargeted", dlr_targeted_loss)]:
        f = fn(z4, y4, t4).sum()
        (g,) = torch.autograd.grad(f, x4, retain_graph=True)
        out[f"{name}LossFirst4"] = f.item()
        out[f"{name}GradFirst4"] = [float(v) for v in g.flatten().tolist()]

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh)
        fh.write("\n")
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU)")


if __name__ == "__main__":
    main()
