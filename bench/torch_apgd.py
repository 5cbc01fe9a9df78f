#!/usr/bin/env python3
"""PyTorch side of bench/apgd.ts: APGD-CE on the demo model, as a long-lived process.

    /usr/bin/python3 bench/torch_apgd.py [--model demo/fashion-cnn.onnx] [--batch 100] [--threads 2]
        [--limit 1000] [--steps 100] [--eps 0.03] [--norm linf]

The algorithm is scripts/reference_apgd.py's (written from the paper, PyTorch autograd), without
random start, a sample leaving the batch at its first misclassified iterate, as the library's APGD
does: both sides do the same work. The model is rebuilt from the ONNX initializers.

Protocol, one JSON line each way: the first line out is {"ready", "torch", "threads"}; then stdin
{"batch": i} -> stdout {"seconds", "correct", "count", "gradients"}: APGD-CE on batch i (only the
samples classified correctly clean are attacked, as the bench's other side does), timed here,
including the clean forward pass; `correct` counts robust samples, `gradients` per-sample gradient
evaluations.
"""
import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from demo_model import load_from_onnx, load_images, load_labels  # noqa: E402
from reference_apgd import apgd_ce  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "demo", "fashion-cnn.onnx"))
    ap.add_argument("--images", default=os.path.join(ROOT, "demo", "data", "t10k-images-idx3-ubyte.gz"))
    ap.add_argument("--labels", default=os.path.join(ROOT, "demo", "data", "t10k-labels-idx1-ubyte.gz"))
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--eps", type=float, default=0.03)
    ap.add_argument("--norm", choices=["linf", "l2"], default="linf")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    net = load_from_onnx(args.model)
    for p in net.parameters():
        p.requires_grad_(False)
    x = load_images(args.images, args.limit)
    y = load_labels(args.labels, args.limit)
    b = args.batch
    batches = [(x[i:i + b], y[i:i + b]) for i in range(0, len(x), b)]
    # Warm-up, not timed: a few steps on the first batch.
    apgd_ce(net, batches[0][0], batches[0][1], args.eps, args.norm, n_iter=3)

    sys.stdout.write(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        i = json.loads(line)["batch"]
        xb, yb = batches[i]
        stats = {"gradients": 0}
        t0 = time.perf_counter()
        robust = apgd_ce(net, xb, yb, args.eps, args.norm, n_iter=args.steps, stats=stats)
        seconds = time.perf_counter() - t0
        sys.stdout.write(json.dumps({"seconds": seconds, "correct": int(robust.sum()), "count": len(yb), "gradients": stats["gradients"]}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
