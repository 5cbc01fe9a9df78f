#!/usr/bin/env python3
"""Independent PyTorch reference for the adaptive (representation-matching) attack on LESCI vq.

Usage (from the repository root; Debian's PyTorch, not a virtualenv's python):
    /usr/bin/python3 scripts/reference_lesci_adaptive.py

What it computes, on the committed demo model and demo data, all in float32 on the CPU except the
PCA fit (float64):

- The demo CNN is rebuilt from the initializers of demo/fashion-cnn.onnx (scripts/demo_model.py,
  as scripts/reference_attacks.py does). T = '/features/features.5/MaxPool_output_0' is the output
  of `net.features` (the second max-pool, [N,64,4,4]); the tail is `net.classifier`.
- LESCI (docs/papers.md §1): E = the flattened activations at T of the first 2000 training images
  that the model classifies correctly, with their labels; exact PCA to r = 64 dimensions (centred
  SVD of E); mode 'vq' replaces the activation by the row of the ORIGINAL E whose reduced row is
  nearest in cosine distance to the reduced activation, and runs the tail on it.
- (a) clean accuracy of LESCI-vq on the first 200 test images.
- The surrogate: soft nearest neighbours over Ê's normalised rows ê_i,
      s_c(x) = log Σ_{i: y_i = c} exp(−‖q̂(x) − ê_i‖² / τ),
  q̂ the L2-normalised reduced activation, τ the median over all rows of the squared distance to
  the nearest other row (in the normalised reduced space; exact duplicates excluded). Computed
  with an exact logsumexp (no clamp).
- (b) PGD L∞, eps 0.05, 10 steps of 2.5·eps/10, uniform random start in the ball (torch seed 0),
  sign steps on the gradient of the cross-entropy of s at the true label; every iterate (the random
  start and the 10 steps) is judged on the real LESCI-vq model, and per sample the first fooling
  iterate is kept (early stop). Pixels are clipped to [0, 1].
- (c) the same with the Carlini-Wagner margin max_{j≠y} s_j − s_y.
- Robust accuracy: share of samples LESCI-vq classifies correctly clean and that no iterate fools.

Writes test/fixtures/lesci-adaptive-reference.json.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from demo_model import load_from_onnx, load_images, load_labels, sha256_file  # noqa: E402

LAYER = "/features/features.5/MaxPool_output_0"
PCA_DIMS = 64
EPS = 0.05
STEPS = 10
STEP_SIZE = 2.5 * EPS / STEPS


class LesciVq:
    """LESCI vq at the output of net.features, plus the soft-kNN surrogate over the same rows."""

    def __init__(self, net, ref_x, ref_y, r=PCA_DIMS):
        self.net = net
        with torch.no_grad():
            act = net.features(ref_x)
            pred = net.classifier(act).argmax(1)
        keep = pred == ref_y
        self.reference = len(ref_y)
        self.E = act[keep].flatten(1).contiguous()  # [n, 1024] float32, unreduced rows
        self.labels = ref_y[keep].clone()
        self.dims = tuple(act.shape[1:])
        # Exact PCA: centred SVD in float64.
        e64 = self.E.double().numpy()
        mean = e64.mean(0)
        _, sv, vt = np.linalg.svd(e64 - mean, full_matrices=False)
        self.explained = float((sv[:r] ** 2).sum() / (sv ** 2).sum())
        comps = vt[:r]  # [r, 1024]
        reduced = (e64 - mean) @ comps.T  # [n, r]
        self.mean = torch.from_numpy(mean.astype(np.float32))
        self.comps_t = torch.from_numpy(np.ascontiguousarray(comps.T.astype(np.float32)))  # [1024, r]
        normed = reduced / np.linalg.norm(reduced, axis=1, keepdims=True)
        self.rows = torch.from_numpy(normed.astype(np.float32))  # ê_i, [n, r]
        # τ: median over rows of the squared distance to the nearest other row (2 − 2 cos).
        d2 = np.maximum(2.0 - 2.0 * (normed @ normed.T), 0.0)
        np.fill_diagonal(d2, np.inf)
        d2[d2 <= 0] = np.inf  # exact duplicates do not set the scale
        nearest = d2.min(1)
        self.tau = float(np.median(nearest[np.isfinite(nearest)]))
        self.onehot = F.one_hot(self.labels, 10).bool()  # [n, C]

    def query(self, x):
        """q̂(x): the L2-normalised PCA-reduced activation at T, [N, r]."""
        a = self.net.features(x).flatten(1)
        q = (a - self.mean) @ self.comps_t
        return q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def logits(self, x):
        """The real LESCI-vq model: nearest row by cosine in PCA space → unreduced row → tail."""
        idx = (self.query(x) @ self.rows.T).argmax(1)
        h = self.E[idx].view(-1, *self.dims)
        return self.net.classifier(h)

    def surrogate(self, x):
        """s_c(x) = log Σ_{i: y_i=c} exp(−‖q̂ − ê_i‖²/τ), by an exact logsumexp per class."""
        q = self.query(x)
        z = -(2.0 - 2.0 * (q @ self.rows.T)) / self.tau  # [N, n]
        masked = z[:, :, None].masked_fill(~self.onehot[None], float("-inf"))  # [N, n, C]
        return torch.logsumexp(masked, dim=1)  # [N, C]


def loss_fn(kind, s, y):
    if kind == "ce":
        return F.cross_entropy(s, y, reduction="sum")
    s_true = s.gather(1, y[:, None]).squeeze(1)
    other = s.masked_fill(F.one_hot(y, s.shape[1]).bool(), float("-inf")).max(1).values
    return (other - s_true).sum()


def pgd_adaptive(lesci, x, y, loss, seed=0):
    """PGD L∞ on the surrogate, early stop per sample on the real LESCI-vq model.

    Returns (robust flags [N] bool, fooled-at iterate [N] int: -1 clean-misclassified, 0 random
    start, 1..STEPS after that step, STEPS+1 never).
    """
    n = len(x)
    gen = torch.Generator().manual_seed(seed)
    clean_ok = lesci.logits(x).argmax(1) == y
    fooled_at = torch.full((n,), STEPS + 1, dtype=torch.long)
    fooled_at[~clean_ok] = -1
    active = clean_ok.clone()
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * EPS
    xa = (x + delta).clamp(0, 1)
    for t in range(STEPS + 1):
        # Judge the iterate on the real defended model.
        fooled = (lesci.logits(xa).argmax(1) != y) & active
        fooled_at[fooled] = t
        active &= ~fooled
        if t == STEPS or not active.any():
            break
        ia = active.nonzero().squeeze(1)
        xi = xa[ia].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(loss, lesci.surrogate(xi), y[ia]), xi)
        step = xa[ia] + STEP_SIZE * g.sign()
        step = torch.min(torch.max(step, x[ia] - EPS), x[ia] + EPS).clamp(0, 1)
        xa = xa.clone()
        xa[ia] = step.detach()
    assert (xa - x).abs().max().item() <= EPS + 1e-6
    return fooled_at == STEPS + 1, fooled_at


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "demo", "fashion-cnn.onnx"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "lesci-adaptive-reference.json"))
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--reference-limit", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = os.path.join(ROOT, "demo", "data")
    net = load_from_onnx(args.model)
    for p in net.parameters():
        p.requires_grad_(False)
    ref_x = load_images(os.path.join(data, "train-images-idx3-ubyte.gz"), args.reference_limit)
    ref_y = load_labels(os.path.join(data, "train-labels-idx1-ubyte.gz"), args.reference_limit)
    x = load_images(os.path.join(data, "t10k-images-idx3-ubyte.gz"), args.limit)
    y = load_labels(os.path.join(data, "t10k-labels-idx1-ubyte.gz"), args.limit)

    t0 = time.time()
    with torch.no_grad():
        undefended_pred = net(x).argmax(1)
    # Sanity: the rebuilt model agrees with the committed PyTorch attack fixture.
    fixture = os.path.join(ROOT, "test", "fixtures", "attack-reference.json")
    if os.path.exists(fixture):
        with open(fixture) as f:
            ref_pred = json.load(f)["cleanPredictions"][: args.limit]
        assert undefended_pred.tolist() == ref_pred, "rebuilt model disagrees with attack-reference.json"
    lesci = LesciVq(net, ref_x, ref_y)
    clean_pred = lesci.logits(x).argmax(1)
    clean_ok = clean_pred == y
    print(f"undefended clean {(undefended_pred == y).float().mean():.4f}; E rows {len(lesci.E)}/{lesci.reference}; "
          f"PCA {PCA_DIMS} explains {lesci.explained:.4f}; tau {lesci.tau:.6g}")
    print(f"(a) LESCI-vq clean accuracy {clean_ok.float().mean():.4f}")

    # Surrogate agreement with the defense on clean inputs (its argmax vs LESCI-vq's 1-NN label).
    with torch.no_grad():
        surrogate_pred = lesci.surrogate(x).argmax(1)
    results = {}
    for loss in ("ce", "cw"):
        t1 = time.time()
        robust, fooled_at = pgd_adaptive(lesci, x, y, loss, seed=0)
        seconds = time.time() - t1
        acc = robust.float().mean().item()
        results[loss] = (robust, fooled_at, acc)
        # bench/adaptive.ts reads the seconds from this line.
        print(f"({'b' if loss == 'ce' else 'c'}) adaptive PGD-{STEPS} {loss}: robust accuracy {acc:.4f}; {len(y)} images in {seconds:.3f} s")
    union = results["ce"][0] & results["cw"][0]
    print(f"per-sample union of (b) and (c): {union.float().mean():.4f}; {time.time() - t0:.1f} s")

    out = {
        "script": "scripts/reference_lesci_adaptive.py",
        "model": "demo/fashion-cnn.onnx",
        "modelSha256": sha256_file(args.model),
        "layer": LAYER,
        "images": "demo/data/t10k-images-idx3-ubyte.gz",
        "labels": "demo/data/t10k-labels-idx1-ubyte.gz",
        "count": args.limit,
        "reference": "demo/data/train-images-idx3-ubyte.gz",
        "referenceLimit": args.reference_limit,
        "embeddingRows": len(lesci.E),
        "pcaDims": PCA_DIMS,
        "pcaExplainedVariance": lesci.explained,
        "distance": "cosine",
        "temperature": lesci.tau,
        "attack": {"name": "pgd", "norm": "linf", "eps": EPS, "steps": STEPS, "stepSize": STEP_SIZE,
                   "randomStart": True, "seed": 0, "earlyStop": "per sample, judged on LESCI-vq"},
        "undefendedCleanAccuracy": (undefended_pred == y).float().mean().item(),
        "cleanAccuracy": clean_ok.float().mean().item(),
        "cleanPredictions": clean_pred.tolist(),
        "surrogateCleanAgreement": (surrogate_pred == clean_pred).float().mean().item(),
        "ce": {"robustAccuracy": results["ce"][2], "robust": [int(v) for v in results["ce"][0].tolist()],
               "fooledAt": results["ce"][1].tolist()},
        "cw": {"robustAccuracy": results["cw"][2], "robust": [int(v) for v in results["cw"][0].tolist()],
               "fooledAt": results["cw"][1].tolist()},
        "bestRobustAccuracy": min(results["ce"][2], results["cw"][2]),
        "unionRobustAccuracy": union.float().mean().item(),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
