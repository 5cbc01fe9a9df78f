#!/usr/bin/env python3
"""Reference timer (PyTorch, CPU) that the TypeScript bench calls as a subprocess.

    /usr/bin/python3 bench/torch_reference.py --task forward|pgd --model demo/fashion-cnn.onnx \
        --images demo/data/t10k-images-idx3-ubyte.gz --labels demo/data/t10k-labels-idx1-ubyte.gz \
        [--batch 100] [--threads 2] [--limit N] [--steps 10] [--eps 0.03]

The torch module is rebuilt from the ONNX initializers. Prints ONE line of JSON to stdout:
    {"task","images","seconds","imagesPerSecond","accuracy","torch","threads", ...}

--task pgd-serve keeps the model and data loaded and answers requests, one JSON line each way, so
the TypeScript bench can alternate with it batch by batch (both sides then see the same stretches
of a noisy shared machine): stdin {"batch": i} -> stdout {"seconds", "correct", "count"} for PGD
on batch i plus the prediction on its result, timed here. The first line out is {"ready", "torch"}.
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
from demo_model import load_from_onnx, load_images, load_labels  # noqa: E402


def pgd_linf(net, x, y, eps, steps, alpha):
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(net(x_adv), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + alpha * g.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def serve(net, batches, args):
    alpha = 2.5 * args.eps / args.steps
    sys.stdout.write(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        i = json.loads(line)["batch"]
        xb, yb = batches[i]
        torch.manual_seed(args.seed + i)
        t0 = time.perf_counter()
        xa = pgd_linf(net, xb, yb, args.eps, args.steps, alpha)
        with torch.no_grad():
            pred = net(xa).argmax(1)
        seconds = time.perf_counter() - t0
        sys.stdout.write(json.dumps({"seconds": seconds, "correct": int((pred == yb).sum()), "count": len(yb)}) + "\n")
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["forward", "pgd", "pgd-serve"], required=True)
    ap.add_argument("--model", default="demo/fashion-cnn.onnx")
    ap.add_argument("--images", default="demo/data/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--labels", default="demo/data/t10k-labels-idx1-ubyte.gz")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--eps", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    net = load_from_onnx(args.model)
    for p in net.parameters():
        p.requires_grad_(False)
    x = load_images(args.images, args.limit)
    y = load_labels(args.labels, args.limit)
    n = len(x)
    b = args.batch
    batches = [(x[i:i + b], y[i:i + b]) for i in range(0, n, b)]

    # warm-up: 2 batches, not timed
    with torch.no_grad():
        for xb, _ in batches[:2]:
            net(xb)
    if args.task in ("pgd", "pgd-serve"):
        xb, yb = batches[0]
        pgd_linf(net, xb, yb, args.eps, 1, args.eps)
    if args.task == "pgd-serve":
        serve(net, batches, args)
        return

    correct = 0
    if args.task == "forward":
        t0 = time.perf_counter()
        with torch.no_grad():
            preds = [net(xb).argmax(1) for xb, _ in batches]
        seconds = time.perf_counter() - t0
    else:
        alpha = 2.5 * args.eps / args.steps
        t0 = time.perf_counter()
        preds = []
        for xb, yb in batches:
            xa = pgd_linf(net, xb, yb, args.eps, args.steps, alpha)
            with torch.no_grad():
                preds.append(net(xa).argmax(1))
        seconds = time.perf_counter() - t0
    correct = sum(int((p == yb).sum()) for p, (_, yb) in zip(preds, batches))

    result = {
        "task": args.task,
        "images": n,
        "seconds": seconds,
        "imagesPerSecond": n / seconds if seconds > 0 else None,
        "accuracy": correct / n if n else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": b,
    }
    if args.task == "pgd":
        result.update({"steps": args.steps, "eps": args.eps, "stepSize": 2.5 * args.eps / args.steps})
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
