#!/usr/bin/env python3
"""PyTorch reference results for the attacks, on the committed demo model and demo test subset.

Usage (from the repository root):
    /usr/bin/python3 scripts/reference_attacks.py

The torch module is rebuilt from the initializers of demo/fashion-cnn.onnx, so the fixture
test/fixtures/attack-reference.json is tied to the committed ONNX file (see modelSha256).
All computations are float32 on CPU.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from demo_model import load_from_onnx, load_images, load_labels, sha256_file  # noqa: E402

LINF_EPS = [0.01, 0.02, 0.03, 0.05, 0.08, 0.1]
L2_EPS = [0.5, 1.0, 2.0]
BIM_STEPS = 10


def ce_sum_grad(net, x, y):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(net(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def cw_margin_grad(net, x, y):
    """Gradient of sum_i (max_{j != y_i} z_ij - z_{i,y_i})."""
    x = x.clone().requires_grad_(True)
    z = net(x)
    z_true = z.gather(1, y[:, None]).squeeze(1)
    other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf"))
    loss = (other.max(1).values - z_true).sum()
    (g,) = torch.autograd.grad(loss, x)
    return g


def fgsm_linf(net, x, y, eps):
    return (x + eps * ce_sum_grad(net, x, y).sign()).clamp(0, 1)


def bim_linf(net, x, y, eps, steps=BIM_STEPS):
    alpha = eps / 4
    x_adv = x.clone()
    for _ in range(steps):
        x_adv = x_adv + alpha * ce_sum_grad(net, x_adv, y).sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def fgsm_l2(net, x, y, eps):
    g = ce_sum_grad(net, x, y)
    n = g.flatten(1).norm(p=2, dim=1).view(-1, 1, 1, 1)
    step = torch.where(n > 0, g / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(g))
    return (x + eps * step).clamp(0, 1)


def batched(fn, net, x, y, batch, *args):
    return torch.cat([fn(net, x[i:i + batch], y[i:i + batch], *args)
                      for i in range(0, len(x), batch)])


@torch.no_grad()
def predict(net, x, batch=250):
    return torch.cat([net(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "demo", "fashion-cnn.onnx"))
    ap.add_argument("--images", default=os.path.join(ROOT, "demo", "data", "t10k-images-idx3-ubyte.gz"))
    ap.add_argument("--labels", default=os.path.join(ROOT, "demo", "data", "t10k-labels-idx1-ubyte.gz"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "attack-reference.json"))
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)

    net = load_from_onnx(args.model)
    for p in net.parameters():
        p.requires_grad_(False)
    x = load_images(args.images)
    y = load_labels(args.labels)
    n = len(x)

    def entry(eps, x_adv):
        pred = predict(net, x_adv)
        acc = (pred == y).float().mean().item()
        # sanity: perturbation budget respected
        return {"eps": eps, "accuracy": acc, "predictions": pred.tolist()}, acc

    clean_pred = predict(net, x)
    clean_acc = (clean_pred == y).float().mean().item()
    print(f"clean accuracy: {clean_acc:.4f}")

    out = {
        "model": "demo/fashion-cnn.onnx",
        "modelSha256": sha256_file(args.model),
        "images": "demo/data/t10k-images-idx3-ubyte.gz",
        "labels": "demo/data/t10k-labels-idx1-ubyte.gz",
        "count": n,
        "cleanAccuracy": clean_acc,
        "cleanPredictions": clean_pred.tolist(),
        "bimSteps": BIM_STEPS,
        "bimStepSize": "eps/4",
        "fgsm_linf": [], "bim_linf": [], "fgsm_l2": [],
    }
    for eps in LINF_EPS:
        xa = batched(fgsm_linf, net, x, y, args.batch, eps)
        assert (xa - x).abs().max().item() <= eps + 1e-6
        e, acc = entry(eps, xa)
        out["fgsm_linf"].append(e)
        print(f"fgsm linf eps={eps}: {acc:.4f}", flush=True)
    for eps in LINF_EPS:
        xa = batched(bim_linf, net, x, y, args.batch, eps)
        assert (xa - x).abs().max().item() <= eps + 1e-6
        e, acc = entry(eps, xa)
        out["bim_linf"].append(e)
        print(f"bim linf eps={eps}: {acc:.4f}", flush=True)
    for eps in L2_EPS:
        xa = batched(fgsm_l2, net, x, y, args.batch, eps)
        assert (xa - x).flatten(1).norm(dim=1).max().item() <= eps + 1e-4
        e, acc = entry(eps, xa)
        out["fgsm_l2"].append(e)
        print(f"fgsm l2 eps={eps}: {acc:.4f}", flush=True)

    out["gradShape"] = [4, 1, 28, 28]
    out["gradLabels"] = y[:4].tolist()
    out["ceSumGradFirst4"] = [float(v) for v in ce_sum_grad(net, x[:4], y[:4]).flatten().tolist()]
    out["cwGradFirst4"] = [float(v) for v in cw_margin_grad(net, x[:4], y[:4]).flatten().tolist()]
    with torch.no_grad():
        z = net(x[:4])
    out["ceSumFirst4"] = F.cross_entropy(z, y[:4], reduction="sum").item()
    zt = z.gather(1, y[:4, None]).squeeze(1)
    zo = z.masked_fill(F.one_hot(y[:4], 10).bool(), float("-inf")).max(1).values
    out["cwLossFirst4"] = (zo - zt).sum().item()

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
