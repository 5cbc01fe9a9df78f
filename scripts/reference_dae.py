#!/usr/bin/env python3
"""The dAE's training (src/core/defenses/dae/fit.ts) written independently in plain numpy, with
hand-written gradients and Adam, and in PyTorch: the reference for test/slow/train-dae.test.ts and
the other side of bench/train.ts.

    # the test fixture: identical data, initial weights, shuffling and noise (a port of
    # src/core/random.ts), float32 throughout -> test/fixtures/dae-reference.json
    /usr/bin/python3 scripts/reference_dae.py --task fixture

    # timing (numpy and PyTorch draw their own noise and orders; the work is the same)
    /usr/bin/python3 scripts/reference_dae.py --task bench --impl numpy|torch --limit 4000 --hidden 256 \
        --epochs 20 [--batch 64] [--threads 2] [--seed 0]

The algorithm: u = (h - mu)/s (mu per feature, s the global RMS deviation), Glorot-uniform W1 [D, H],
W2 [H, D], zero biases, r(u) = sigmoid(u W1 + b1) W2 + b2, per epoch a seeded permutation, batches of
`batch` rows corrupted with N(0, sigma^2) noise, loss mean((r(noisy) - clean)^2), Adam (beta1 0.9,
beta2 0.999, eps 1e-7, bias corrections in float64 as PyTorch). The bench task prints one JSON line.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "demo", "data", "train-images-idx3-ubyte.gz")
M32 = 0xFFFFFFFF

# ----------------------------------------------------------------------------------------------
# src/core/random.ts, bit for bit: sfc32 seeded by splitmix32, forks keyed by FNV-1a + fmix32.


def imul(a, b):
    return (a * b) & M32


def fmix32(h):
    h ^= h >> 16
    h = imul(h, 0x85EBCA6B)
    h ^= h >> 13
    h = imul(h, 0xC2B2AE35)
    h ^= h >> 16
    return h


def hash32(text, basis):
    h = basis & M32
    for ch in text:
        h ^= ord(ch)
        h = imul(h, 0x01000193)
    return fmix32(h)


def splitmix32(state):
    s = (state + 0x9E3779B9) & M32
    z = imul(s ^ (s >> 16), 0x21F0AAAD)
    z = imul(z ^ (z >> 15), 0x735A2D97)
    return s, (z ^ (z >> 15)) & M32


class Rng:
    def __init__(self, seed, key1=None):
        self.key0 = seed % 2**32
        self.key1 = 0x2545F491 if key1 is None else key1 & M32
        s0, s1 = self.key0, (self.key1 ^ 0x6A09E667) & M32
        s0, self.a = splitmix32(s0)
        s0, self.b = splitmix32(s0)
        s1, self.c = splitmix32(s1)
        s1, self.d = splitmix32(s1)
        self.spare = None
        for _ in range(12):
            self.next_uint32()

    def next_uint32(self):
        a, b, c, d = self.a, self.b, self.c, self.d
        t = (a + b + d) & M32
        self.d = (d + 1) & M32
        self.a = b ^ (b >> 9)
        self.b = (c + (c << 3)) & M32
        c = ((c << 21) | (c >> 11)) & M32
        self.c = (c + t) & M32
        return t

    def next(self):
        return self.next_uint32() / 4294967296.0

    def int(self, n):
        return math.floor(self.next() * n)

    def normal(self):
        if self.spare is not None:
            v, self.spare = self.spare, None
            return v
        while True:
            u = 2 * self.next() - 1
            v = 2 * self.next() - 1
            s = u * u + v * v
            if 0 < s < 1:
                break
        f = math.sqrt(-2 * math.log(s) / s)
        self.spare = v * f
        return u * f

    def uniform(self, n, lo, hi):
        w = hi - lo
        return np.array([lo + w * self.next() for _ in range(n)], dtype=np.float32)

    def fork(self, label):
        text = f"{self.key0:x}.{self.key1:x}/{label}"
        return Rng(hash32(text, 0x811C9DC5), hash32(text, 0x9747B28C))


def permutation(n, rng):
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.int(i + 1)
        p[i], p[j] = p[j], p[i]
    return np.array(p, dtype=np.int64)


# ----------------------------------------------------------------------------------------------


def load_images(limit):
    with gzip.open(IMAGES, "rb") as f:
        data = f.read()
    n, rows, cols = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
    n = min(n, limit)
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16, count=n * rows * cols).reshape(n, rows * cols)
    return (pixels.astype(np.float64) * (1 / 255)).astype(np.float32)


def normalise(h):
    h64 = h.astype(np.float64)
    mu = h64.mean(axis=0)
    scale = math.sqrt(((h64 - mu) ** 2).mean()) or 1.0
    return ((h64 - mu) / scale).astype(np.float32), mu, scale


def glorot(rng, fan_in, fan_out):
    limit = math.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(fan_in * fan_out, -limit, limit).reshape(fan_in, fan_out)


class NumpyDae:
    """Forward, hand-written backward and Adam in float32 numpy."""

    def __init__(self, w1, w2, lr, beta1=0.9, beta2=0.999, eps=1e-7):
        f32 = np.float32
        self.p = [w1, np.zeros(w1.shape[1], f32), w2, np.zeros(w2.shape[1], f32)]
        self.m = [np.zeros_like(p) for p in self.p]
        self.v = [np.zeros_like(p) for p in self.p]
        self.t = 0
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps

    def reconstruct(self, x):
        w1, b1, w2, b2 = self.p
        z = 1 / (1 + np.exp(-(x @ w1 + b1)))
        return z.astype(np.float32), (z @ w2 + b2).astype(np.float32)

    def step(self, x, target):
        w1, b1, w2, b2 = self.p
        z, r = self.reconstruct(x)
        diff = r - target
        loss = float(np.mean(diff * diff, dtype=np.float32))
        dr = (diff * np.float32(2)) / np.float32(diff.size)
        dz = dr @ w2.T
        da = dz * (z * (np.float32(1) - z))
        grads = [x.T @ da, da.sum(axis=0), z.T @ dr, dr.sum(axis=0)]
        self.t += 1
        f32 = np.float32
        step_size = f32(self.lr / (1 - self.beta1 ** self.t))
        inv_sqrt_bc2 = f32(1 / math.sqrt(1 - self.beta2 ** self.t))
        for k, g in enumerate(grads):
            self.m[k] = self.m[k] * f32(self.beta1) + g * f32(1 - self.beta1)
            self.v[k] = self.v[k] * f32(self.beta2) + (g * g) * f32(1 - self.beta2)
            denom = np.sqrt(self.v[k]) * inv_sqrt_bc2 + f32(self.eps)
            self.p[k] = self.p[k] - (self.m[k] / denom) * step_size
        return loss

    def clean_mse(self, u):
        total = 0.0
        for s in range(0, len(u), 1024):
            _, r = self.reconstruct(u[s:s + 1024])
            total += float(np.mean((r - u[s:s + 1024]) ** 2, dtype=np.float32)) * len(r)
        return total / len(u)


def fixture(args):
    """Our Rng, our order of draws: the same weights, orders and noise as fitDae."""
    h = load_images(args.limit)
    n, d = h.shape
    u, _, _ = normalise(h)
    rng = Rng(args.seed)
    init = rng.fork("init")
    net = NumpyDae(glorot(init.fork("encoder"), d, args.hidden), glorot(init.fork("decoder"), args.hidden, d), args.lr)
    initial = net.clean_mse(u)
    noise = rng.fork("noise")
    history = []
    for epoch in range(args.epochs):
        order = permutation(n, rng.fork(f"shuffle/{epoch}"))
        total = 0.0
        for start in range(0, n, args.batch):
            idx = order[start:start + args.batch]
            clean = u[idx]
            flat = clean.flatten()
            noisy = np.array([flat[i] + args.sigma * noise.normal() for i in range(flat.size)], dtype=np.float32).reshape(clean.shape)
            total += net.step(noisy, clean) * len(idx)
        history.append(total / n)
        print(f"epoch {epoch}: {history[-1]:.6f}", file=sys.stderr)
    final = net.clean_mse(u)
    out = {
        "generator": "scripts/reference_dae.py --task fixture",
        "config": {"images": "demo/data/train-images-idx3-ubyte.gz", "limit": args.limit, "hidden": args.hidden, "epochs": args.epochs,
                   "batchSize": args.batch, "sigma": args.sigma, "learningRate": args.lr, "seed": args.seed},
        "lossHistory": history,
        "cleanMse": {"initial": initial, "final": final},
    }
    path = os.path.join(ROOT, "test", "fixtures", "dae-reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {os.path.relpath(path, ROOT)}: clean MSE {initial:.5f} -> {final:.5f}", file=sys.stderr)


def bench(args):
    h = load_images(args.limit)
    n, d = h.shape
    if args.impl == "torch":
        import torch  # imported before the clock starts
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    u, _, _ = normalise(h)
    gen = np.random.default_rng(args.seed)
    history = []
    if args.impl == "numpy":
        lim1 = math.sqrt(6 / (d + args.hidden))
        net = NumpyDae(gen.uniform(-lim1, lim1, (d, args.hidden)).astype(np.float32), gen.uniform(-lim1, lim1, (args.hidden, d)).astype(np.float32), args.lr)
        for _ in range(args.epochs):
            order = gen.permutation(n)
            total = 0.0
            for start in range(0, n, args.batch):
                clean = u[order[start:start + args.batch]]
                noisy = (clean + np.float32(args.sigma) * gen.standard_normal(clean.shape, dtype=np.float32)).astype(np.float32)
                total += net.step(noisy, clean) * len(clean)
            history.append(total / n)
        final = net.clean_mse(u)
        version = np.__version__
    else:
        torch.manual_seed(args.seed)
        model = torch.nn.Sequential(torch.nn.Linear(d, args.hidden), torch.nn.Sigmoid(), torch.nn.Linear(args.hidden, d))
        for layer in (model[0], model[2]):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)
        ut = torch.from_numpy(u)
        for _ in range(args.epochs):
            order = torch.randperm(n)
            total = 0.0
            for start in range(0, n, args.batch):
                clean = ut[order[start:start + args.batch]]
                noisy = clean + args.sigma * torch.randn_like(clean)
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(noisy), clean)
                loss.backward()
                opt.step()
                total += float(loss) * len(clean)
            history.append(total / n)
        with torch.no_grad():
            final = float(torch.nn.functional.mse_loss(model(ut), ut))
        version = torch.__version__
    seconds = time.perf_counter() - t0
    print(json.dumps({"impl": args.impl, "version": version, "seconds": seconds, "lossHistory": history, "cleanMse": final,
                      "threads": args.threads, "steps": args.epochs * math.ceil(n / args.batch)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["fixture", "bench"], required=True)
    ap.add_argument("--impl", choices=["numpy", "torch"], default="numpy")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    fixture(args) if args.task == "fixture" else bench(args)


if __name__ == "__main__":
    main()
