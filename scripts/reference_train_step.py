#!/usr/bin/env python3
"""Reference training steps (PyTorch autograd + torch.optim, CPU, float32) for test/slow/train.test.ts.

    /usr/bin/python3 scripts/reference_train_step.py [--out test/fixtures/train-step-reference.json]

Each case is a small network written out op by op (the test builds the same ONNX graph), seeded
initial parameters, a few batches of varying size, a loss (mean squared error, or softmax cross-entropy
with integer labels, both means as torch.nn.functional's defaults) and an optimizer: SGD with momentum
(plain and Nesterov) and Adam, each with weight decay, and AdamW. For every step the fixture holds the
batch, the loss on it before the update and the parameters and optimizer state after it.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mlp(params, x):
    w1, b1, w2, b2 = params
    return torch.tanh(x @ w1 + b1) @ w2 + b2


def cnn(params, x):
    w, b, fc, fcb = params
    h = F.max_pool2d(torch.relu(F.conv2d(x, w, b, padding=1)), 2)
    return F.linear(torch.flatten(h, 1), fc, fcb)


NETS = {
    # name: (forward, parameter shapes, input sample shape, output size)
    "mlp": (mlp, [[6, 5], [5], [5, 4], [4]], [6], 4),
    "cnn": (cnn, [[3, 1, 3, 3], [3], [4, 27], [4]], [1, 6, 6], 4),
}

CASES = [
    {"name": "mlp mse sgd momentum 0.9, weight decay 0.01", "net": "mlp", "loss": "mse", "lr": 0.1,
     "optimizer": {"kind": "sgd", "momentum": 0.9, "weightDecay": 0.01}},
    {"name": "mlp mse sgd nesterov", "net": "mlp", "loss": "mse", "lr": 0.05,
     "optimizer": {"kind": "sgd", "momentum": 0.8, "nesterov": True, "weightDecay": 0.0}},
    {"name": "mlp mse adam, weight decay 0.01", "net": "mlp", "loss": "mse", "lr": 0.01,
     "optimizer": {"kind": "adam", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weightDecay": 0.01}},
    {"name": "mlp mse adamw (decoupled weight decay 0.05)", "net": "mlp", "loss": "mse", "lr": 0.01,
     "optimizer": {"kind": "adam", "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-7, "weightDecay": 0.05, "decoupledWeightDecay": True}},
    {"name": "cnn softmax-ce adam, weight decay 0.001", "net": "cnn", "loss": "softmax-ce", "lr": 0.02,
     "optimizer": {"kind": "adam", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weightDecay": 0.001}},
    {"name": "cnn softmax-ce sgd momentum 0.5, weight decay 0.01", "net": "cnn", "loss": "softmax-ce", "lr": 0.1,
     "optimizer": {"kind": "sgd", "momentum": 0.5, "weightDecay": 0.01}},
]

BATCHES = [4, 3, 5]


def make_optimizer(spec, params, lr):
    if spec["kind"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=spec.get("momentum", 0), nesterov=spec.get("nesterov", False),
                               weight_decay=spec.get("weightDecay", 0))
    cls = torch.optim.AdamW if spec.get("decoupledWeightDecay") else torch.optim.Adam
    return cls(params, lr=lr, betas=(spec["beta1"], spec["beta2"]), eps=spec["epsilon"], weight_decay=spec.get("weightDecay", 0))


def state_of(opt, params, spec):
    """Optimizer state after a step, per parameter, named as the ONNX step names its roles."""
    out = []
    for p in params:
        st = opt.state[p]
        if spec["kind"] == "sgd":
            if spec.get("momentum", 0) > 0:
                out.append({"momentum": st["momentum_buffer"].flatten().tolist()})
            else:
                out.append({})
        else:
            out.append({"m": st["exp_avg"].flatten().tolist(), "v": st["exp_avg_sq"].flatten().tolist()})
    return out


def run_case(case, seed):
    forward, shapes, sample, classes = NETS[case["net"]]
    rng = np.random.default_rng(seed)
    init = [rng.uniform(-0.6, 0.6, size=s).astype(np.float32) for s in shapes]
    params = [torch.tensor(v, requires_grad=True) for v in init]
    opt = make_optimizer(case["optimizer"], params, case["lr"])
    steps = []
    for rows in BATCHES:
        x = rng.uniform(-1, 1, size=[rows] + sample).astype(np.float32)
        if case["loss"] == "mse":
            target = rng.uniform(-1, 1, size=[rows, classes]).astype(np.float32)
        else:
            target = rng.integers(0, classes, size=[rows]).astype(np.int64)
        opt.zero_grad()
        y = forward(params, torch.tensor(x))
        loss = F.mse_loss(y, torch.tensor(target)) if case["loss"] == "mse" else F.cross_entropy(y, torch.tensor(target))
        loss.backward()
        opt.step()
        steps.append({
            "x": x.flatten().tolist(),
            "target": target.flatten().tolist(),
            "rows": rows,
            "loss": float(loss.item()),
            "params": [p.detach().flatten().tolist() for p in params],
            "state": state_of(opt, params, case["optimizer"]),
        })
    return {**case, "paramShapes": shapes, "sampleShape": sample, "outputSize": classes,
            "init": [v.flatten().tolist() for v in init], "steps": steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "train-step-reference.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = [run_case(c, seed) for seed, c in enumerate(CASES)]
    with open(args.out, "w") as f:
        json.dump({"generator": "scripts/reference_train_step.py", "torch": torch.__version__, "cases": cases}, f)
    print(f"wrote {len(cases)} cases to {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
