#!/usr/bin/env python3
"""Train the Robustness Lab demo model (small CNN on Fashion-MNIST) and export it.

Usage (from the repository root):
    /usr/bin/python3 scripts/train_demo_model.py [--data /usr/share/datasets/fashion-mnist]

Writes:
    demo/fashion-cnn.onnx              ONNX (opset 13, input "input" [N,1,28,28], output "logits" [N,10])
    demo/fashion-cnn.md                model card
    demo/data/*-idx?-ubyte.gz          demo subset (first 4000 train / first 1000 test)
    test/fixtures/demo-reference.json  PyTorch reference predictions for the demo subset
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from demo_model import (CLASS_NAMES, FashionCNN, load_from_onnx, read_idx,  # noqa: E402
                        sha256_file, write_idx_gz)

TRAIN_SUBSET = 4000
TEST_SUBSET = 1000


def to_tensor(imgs):
    x = torch.from_numpy(imgs.astype(np.float32) / np.float32(255.0))
    return x.reshape(-1, 1, 28, 28)


@torch.no_grad()
def predict(net, x, batch=500):
    net.eval()
    logits = torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])
    return logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    torch.use_deterministic_algorithms(True)

    tr_img = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    tr_lab = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    te_img = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    te_lab = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))
    assert tr_img.shape == (60000, 28, 28) and te_img.shape == (10000, 28, 28)

    # ---- demo subset (IDX, gzip mtime=0 -> reproducible bytes)
    data_dir = os.path.join(ROOT, "demo", "data")
    os.makedirs(data_dir, exist_ok=True)
    write_idx_gz(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), tr_img[:TRAIN_SUBSET])
    write_idx_gz(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), tr_lab[:TRAIN_SUBSET])
    write_idx_gz(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"), te_img[:TEST_SUBSET])
    write_idx_gz(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"), te_lab[:TEST_SUBSET])

    x_tr, y_tr = to_tensor(tr_img), torch.from_numpy(tr_lab.astype(np.int64))
    x_te, y_te = to_tensor(te_img), torch.from_numpy(te_lab.astype(np.int64))

    # ---- train
    net = FashionCNN()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(0)
    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            xb, yb = x_tr[idx], y_tr[idx]
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(idx)
        te_acc = (predict(net, x_te).argmax(1) == y_te).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss_sum / total:.4f} train-acc {correct / total:.4f} "
              f"test-acc {te_acc:.4f} ({time.time() - t0:.0f}s)", flush=True)

    # ---- export
    net.eval()
    onnx_path = os.path.join(ROOT, "demo", "fashion-cnn.onnx")
    torch.onnx.export(
        net, torch.zeros(1, 1, 28, 28), onnx_path,
        export_params=True, opset_version=13, do_constant_folding=True,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    import onnx
    m = onnx.load(onnx_path)
    # No intermediate value_info: the engine must infer shapes itself.
    del m.graph.value_info[:]
    m.producer_name = "pytorch"
    m.doc_string = "Robustness Lab demo model: Fashion-MNIST CNN (scripts/train_demo_model.py)"
    onnx.checker.check_model(m)
    onnx.save(m, onnx_path)
    onnx.checker.check_model(onnx.load(onnx_path))
    print("onnx ops:", [n.op_type for n in m.graph.node])
    print("onnx initializers:", [(i.name, list(i.dims)) for i in m.graph.initializer])

    # ---- reference from the exported weights
    ref = load_from_onnx(onnx_path)
    full_logits = predict(ref, x_te)
    diff = (full_logits - predict(net, x_te)).abs().max().item()
    assert diff < 1e-4, diff
    full_acc = (full_logits.argmax(1) == y_te).float().mean().item()
    sub_logits = full_logits[:TEST_SUBSET]
    sub_pred = sub_logits.argmax(1)
    sub_acc = (sub_pred == y_te[:TEST_SUBSET]).float().mean().item()
    tr_sub_acc = (predict(ref, x_tr[:TRAIN_SUBSET]).argmax(1) == y_tr[:TRAIN_SUBSET]).float().mean().item()
    print(f"full test accuracy (10000): {full_acc:.4f}")
    print(f"demo test subset accuracy ({TEST_SUBSET}): {sub_acc:.4f}")
    print(f"demo train subset accuracy ({TRAIN_SUBSET}): {tr_sub_acc:.4f}")

    sha = sha256_file(onnx_path)
    fixture = {
        "model": "demo/fashion-cnn.onnx",
        "modelSha256": sha,
        "subset": {
            "images": "demo/data/t10k-images-idx3-ubyte.gz",
            "count": TEST_SUBSET,
            "accuracy": sub_acc,
            "predictions": sub_pred.tolist(),
            "labels": y_te[:TEST_SUBSET].tolist(),
        },
        "trainSubsetAccuracy": tr_sub_acc,
        "fullTestAccuracy": full_acc,
        "logitsFirst8": [[float(v) for v in row] for row in sub_logits[:8].tolist()],
        "classNames": CLASS_NAMES,
        "torch": torch.__version__,
    }
    fix_path = os.path.join(ROOT, "test", "fixtures", "demo-reference.json")
    os.makedirs(os.path.dirname(fix_path), exist_ok=True)
    with open(fix_path, "w") as f:
        json.dump(fixture, f)
        f.write("\n")

    # ---- model card
    size = os.path.getsize(onnx_path)
    card = f"""# Demo model: Fashion-MNIST CNN

`demo/fashion-cnn.onnx` is a small convolutional classifier for Fashion-MNIST, trained by
`scripts/train_demo_model.py`. It is the model the Robustness Lab demo, tests and benchmarks use.

## Interface

- Input `input`: float32 `[N, 1, 28, 28]` (dynamic batch), pixels scaled to `[0, 1]` (`x / 255`),
  **no** mean/std normalisation.
- Output `logits`: float32 `[N, 10]` (raw logits, no softmax).
- ONNX opset 13, parameters stored as initializers, no intermediate `value_info`.
- Size: {size} bytes; SHA-256 `{sha}`.

## Architecture

```
Conv2d(1, 32, kernel 5)  -> ReLU -> MaxPool2d(2)     # 28x28 -> 24x24 -> 12x12
Conv2d(32, 64, kernel 5) -> ReLU -> MaxPool2d(2)     # 12x12 -> 8x8 -> 4x4
Flatten                                              # 64*4*4 = 1024
Linear(1024, 256) -> ReLU
Linear(256, 10)
```

## Training

Full Fashion-MNIST training set (60,000 images), {args.epochs} epochs, Adam (lr {args.lr:g}),
batch size {args.batch}, cross-entropy loss, no augmentation, seed 0, {args.threads} CPU threads,
torch {torch.__version__}.

```
/usr/bin/python3 scripts/train_demo_model.py --data /usr/share/datasets/fashion-mnist
```

## Accuracy (clean)

| Set | Images | Accuracy |
| --- | ---: | ---: |
| Full test set | 10,000 | {full_acc * 100:.2f}% |
| Demo test subset (`demo/data/t10k-*`, first 1,000 test images) | 1,000 | {sub_acc * 100:.2f}% |
| Demo train subset (`demo/data/train-*`, first 4,000 training images) | 4,000 | {tr_sub_acc * 100:.2f}% |

Reference predictions and logits are in `test/fixtures/demo-reference.json`.

## Classes

| Index | Class |
| ---: | --- |
""" + "".join(f"| {i} | {c} |\n" for i, c in enumerate(CLASS_NAMES)) + """
## Demo data

`demo/data/` holds IDX files (gzip, reproducible bytes) in the original Fashion-MNIST format:
the first 4,000 training images/labels and the first 1,000 test images/labels. Fashion-MNIST is
by Zalando Research (MIT licence), https://github.com/zalandoresearch/fashion-mnist.
"""
    with open(os.path.join(ROOT, "demo", "fashion-cnn.md"), "w") as f:
        f.write(card)
    print(f"wrote {onnx_path} ({size} bytes, sha256 {sha})")


if __name__ == "__main__":
    main()
