#!/usr/bin/env python3
"""Isometry per layer (src/core/analysis/isometry.ts) recomputed independently in numpy: the
reference for test/unit/isometry.test.ts.

    /usr/bin/python3 scripts/reference_isometry.py --dir D

D holds meta.json ({"count", "inputSize", "input": file, "layers": [{"tensor", "file", "size"}],
"pairs": {"within": {"i": [...], "j": [...]}, "between": {...}}}) and raw little-endian float32
files ([count, size] row-major). Prints one JSON object: per layer and pair kind, Pearson r,
Spearman rho (ranks averaged over ties), the least-squares scale s of d_z ~ s*d_x (through the
origin) and the relative distortion mean((s*d_x - d_z)^2) / mean(d_z^2), all in float64.
"""
import argparse
import json
import os

import numpy as np


def load(directory, name, size, count):
    return np.fromfile(os.path.join(directory, name), dtype="<f4").reshape(count, size).astype(np.float64)


def distances(values, pairs):
    i = np.asarray(pairs["i"], dtype=np.int64)
    j = np.asarray(pairs["j"], dtype=np.int64)
    return np.linalg.norm(values[i] - values[j], axis=1)


def average_ranks(v):
    # 1-based rank of each value: the mean of the first and last position its value takes in the sorted order.
    s = np.sort(v)
    return (np.searchsorted(s, v, side="left") + np.searchsorted(s, v, side="right") + 1) / 2.0


def correlation(a, b):
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def stats(dx, dz):
    if len(dx) == 0:
        return {"pairs": 0, "pearson": None, "spearman": None, "scale": None, "distortion": None}
    scale = float(np.dot(dx, dz) / np.dot(dx, dx))
    distortion = float(np.mean((scale * dx - dz) ** 2) / np.mean(dz**2))
    return {
        "pairs": int(len(dx)),
        "pearson": correlation(dx, dz),
        "spearman": correlation(average_ranks(dx), average_ranks(dz)),
        "scale": scale,
        "distortion": distortion,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.dir, "meta.json")) as f:
        meta = json.load(f)
    count = meta["count"]
    x = load(args.dir, meta["input"], meta["inputSize"], count)
    dx = {kind: distances(x, meta["pairs"][kind]) for kind in ("within", "between")}
    out = {}
    for layer in meta["layers"]:
        z = load(args.dir, layer["file"], layer["size"], count)
        out[layer["tensor"]] = {kind: stats(dx[kind], distances(z, meta["pairs"][kind])) for kind in ("within", "between")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
