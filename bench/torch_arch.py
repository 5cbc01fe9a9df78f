#!/usr/bin/env python3
"""PyTorch side of bench/arch.ts: the library's default PGD (L∞, no random start, sign steps of
2.5·eps/steps, per-sample early stop) on a torchvision model, as a long-lived process.

    /usr/bin/python3 bench/torch_arch.py --dir .rlab-cache/arch-bench/resnet18 --arch resnet18 \
        [--batch 50] [--threads 2] [--limit 200] [--steps 10] [--eps 0.002]

The module is torchvision's, with the state_dict that scripts/export_arch_fixtures.py --bench
exported beside model.onnx (BatchNorm kept as PyTorch runs it in eval mode; MKL-DNN convolutions).
The first line out is {"ready", "torch", "threads"}; then stdin {"batch": i} -> stdout
{"seconds", "cpuSeconds" (all threads), "robust": [0/1 per image], "gradRows", "forwardRows"} for batch i, timed here.

A clean forward pass comes first (as in src/core/attacks/run.ts), then the loop follows src/core/attacks/iterative.ts: at step t the logits at x_t come with the gradient;
samples already misclassified at x_t stop (they count as fooled), the others take the step; after
the last step the remaining iterates get one forward pass.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision


def early_stop_pgd(net, x, y, eps, steps, alpha):
    robust = torch.ones(len(y), dtype=torch.bool)
    idx = torch.arange(len(y))
    x0, xa, ya = x, x.clone(), y
    grad_rows = forward_rows = 0
    for t in range(steps + 1):
        if len(idx) == 0:
            break
        if t == steps:
            with torch.no_grad():
                fooled = net(xa).argmax(1) != ya
            forward_rows += len(idx)
            robust[idx[fooled]] = False
            break
        xa.requires_grad_(True)
        logits = net(xa)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, ya, reduction="sum"), xa)
        grad_rows += len(idx)
        with torch.no_grad():
            fooled = logits.argmax(1) != ya
            xn = xa + alpha * g.sign()
            xn = torch.min(torch.max(xn, x0 - eps), x0 + eps).clamp(0, 1)
        robust[idx[fooled]] = False
        keep = ~fooled
        idx, x0, xa, ya = idx[keep], x0[keep], xn[keep].detach(), ya[keep]
    return robust, grad_rows, forward_rows


def fold_batchnorm(net):
    """Conv → BatchNorm pairs become one Conv (torch.nn.utils.fusion), the arithmetic of the ONNX export."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in net.modules():
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = torch.nn.Identity()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--arch", choices=["resnet18", "mobilenet_v2"], required=True)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--eps", type=float, default=0.002)
    ap.add_argument("--fuse-bn", action="store_true", help="fold BatchNorm into the convolutions, as the ONNX export does")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    net = {"resnet18": torchvision.models.resnet18, "mobilenet_v2": torchvision.models.mobilenet_v2}[args.arch](weights=None, num_classes=10)
    net.load_state_dict(torch.load(os.path.join(args.dir, "weights.pt")))
    net.eval()
    if args.fuse_bn:
        fold_batchnorm(net)
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(os.path.join(args.dir, "x.npy")))[: args.limit]
    y = torch.from_numpy(np.load(os.path.join(args.dir, "labels.npy")))[: args.limit]
    b = args.batch
    batches = [(x[i:i + b], y[i:i + b]) for i in range(0, len(x), b)]
    alpha = 2.5 * args.eps / args.steps
    early_stop_pgd(net, *batches[0], args.eps, 1, alpha)  # warm-up, not timed

    sys.stdout.write(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        xb, yb = batches[json.loads(line)["batch"]]
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():  # the clean pass, as runAttack's: only images classified correctly are attacked
            clean = net(xb).argmax(1) == yb
        robust, grad_rows, forward_rows = early_stop_pgd(net, xb[clean], yb[clean], args.eps, args.steps, alpha)
        full = torch.zeros(len(yb), dtype=torch.bool)
        full[clean] = robust
        robust = full
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        out = {"seconds": seconds, "cpuSeconds": cpu, "robust": robust.int().tolist(), "gradRows": grad_rows, "forwardRows": forward_rows}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
