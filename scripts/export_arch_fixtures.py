#!/usr/bin/env python3
"""Reference fixtures for the ONNX autodiff tests (test/unit/autodiff.test.ts).

Builds torchvision's resnet18, mobilenet_v2 and squeezenet1_1 with RANDOM weights
(torch.manual_seed; nothing is downloaded), puts them in eval mode, exports each to
ONNX (opset 13, dynamic batch dim 'N') and saves PyTorch autograd input gradients:

  <out>/<arch>/model.onnx   the exported model
  <out>/<arch>/x.npy        float32 [2, 3, 64, 64] input
  <out>/<arch>/labels.npy   int64 [2] class indices
  <out>/<arch>/dy.npy       float32 [2, 1000] cotangent
  <out>/<arch>/logits.npy   float32 [2, 1000] PyTorch logits
  <out>/<arch>/grad_ce.npy  d/dx of sum_i CE(logits_i, labels_i)
  <out>/<arch>/grad_vjp.npy d/dx of <dy, logits>
  <out>/<arch>/meta.json    loss value and versions

Run with Debian's python (python3-torch, python3-torchvision, python3-onnx):
  /usr/bin/python3 scripts/export_arch_fixtures.py [--out .rlab-cache/arch-fixtures]
The output folder is git-ignored: the files are tens of MB.

--bench exports what bench/arch.ts attacks instead (default out .rlab-cache/arch-bench):
  <out>/<arch>/model.onnx   10 classes, BatchNorm statistics calibrated on the images (calibrate),
                            torch.onnx.export's defaults (eval mode: BatchNorm folded
                            into the convolutions), opset 13, dynamic batch
  <out>/<arch>/weights.pt   the same module's state_dict, for the PyTorch side (bench/torch_arch.py)
  <out>/<arch>/x.npy        float32 [--images, 3, 64, 64] seeded images in [0, 1]
  <out>/<arch>/labels.npy   int64: PyTorch's clean predictions (every image starts correct)
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

ARCHS = {
    # BatchNormalization is kept as its own node (TrainingMode.PRESERVE on an eval-mode model),
    # so the BN gradient rule is exercised; mobilenet_v2 is exported with BN folded into Conv.
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), torch.onnx.TrainingMode.PRESERVE),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), torch.onnx.TrainingMode.EVAL),
    "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(weights=None), torch.onnx.TrainingMode.EVAL),
}


def randomize(model, gen):
    """Random weights that keep activations O(1) through the depth (torchvision's fan_out init makes
    mobilenet_v2's depthwise layers shrink them to ~1e-9 logits), and non-trivial BatchNorm running
    statistics and affine parameters (fresh BN layers are the identity)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                gain = 2.0 if isinstance(m, torch.nn.Conv2d) else 0.01  # small logits: softmax not saturated
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (gain / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))


def export(name, out_dir):
    make, training = ARCHS[name]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = make()
    randomize(model, gen)
    model.eval()

    x = torch.randn(2, 3, 64, 64, generator=gen)
    labels = torch.tensor([3, 7], dtype=torch.int64)
    dy = torch.randn(2, 1000, generator=gen)

    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    torch.onnx.export(
        model, x, os.path.join(folder, "model.onnx"), opset_version=13, training=training,
        input_names=["input"], output_names=["logits"], do_constant_folding=True,
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )

    xr = x.clone().requires_grad_(True)
    logits = model(xr)
    loss = F.cross_entropy(logits, labels, reduction="sum")
    (grad_ce,) = torch.autograd.grad(loss, xr)
    xv = x.clone().requires_grad_(True)
    (grad_vjp,) = torch.autograd.grad(model(xv), xv, grad_outputs=dy)

    save = lambda file, t: np.save(os.path.join(folder, file), t.detach().numpy())
    save("x.npy", x)
    save("labels.npy", labels)
    save("dy.npy", dy)
    save("logits.npy", logits)
    save("grad_ce.npy", grad_ce)
    save("grad_vjp.npy", grad_vjp)
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump({"loss_ce_sum": float(loss), "torch": torch.__version__, "torchvision": torchvision.__version__, "opset": 13}, f)
    print(f"{name}: logits std {float(logits.std()):.3g}, loss {float(loss):.4f}, |grad_ce| {float(grad_ce.norm()):.4g}, |grad_vjp| {float(grad_vjp.norm()):.4g}")


def smooth_images(count, gen):
    """Seeded images in [0, 1] with some spatial structure (upsampled 8x8 noise plus fine noise)."""
    coarse = torch.rand(count, 3, 8, 8, generator=gen)
    fine = torch.rand(count, 3, 64, 64, generator=gen)
    x = 0.8 * F.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False) + 0.2 * fine
    return x.clamp(0, 1)


def calibrate(model, x, gen):
    """Statistics of a trained network, roughly: every BatchNorm's running mean and variance are those
    of its input on these images (so each layer's output is normalised, varies from image to image
    and rarely sits at a ReLU6 kink), and the classifier gets unit-scale logits (clear margins
    between classes, so the attack's outcome does not hinge on rounding)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
        model.train()
        for i in range(0, len(x), 50):
            model(x[i:i + 50])
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1.0 / m.weight.shape[1]) ** 0.5)


def export_bench(name, out_dir, images):
    make = {"resnet18": torchvision.models.resnet18, "mobilenet_v2": torchvision.models.mobilenet_v2}[name]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4321)
    model = make(weights=None, num_classes=10)
    randomize(model, gen)
    x = smooth_images(images, gen)
    calibrate(model, x, gen)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    # torch.onnx.export's defaults for an eval-mode model (BatchNorm folded), as a user exports it.
    torch.onnx.export(
        model, x[:2], os.path.join(folder, "model.onnx"), opset_version=13,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )
    torch.save(model.state_dict(), os.path.join(folder, "weights.pt"))
    with torch.no_grad():
        labels = torch.cat([model(x[i:i + 50]).argmax(1) for i in range(0, images, 50)])
    np.save(os.path.join(folder, "x.npy"), x.numpy())
    np.save(os.path.join(folder, "labels.npy"), labels.numpy())
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump({"images": images, "classes": 10, "torch": torch.__version__, "torchvision": torchvision.__version__, "opset": 13}, f)
    print(f"{name}: {images} images, predicted classes {sorted(set(labels.tolist()))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--out", default=None, help="default .rlab-cache/arch-fixtures (--bench: .rlab-cache/arch-bench)")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHS), help="default: all")
    parser.add_argument("--bench", action="store_true", help="export resnet18 and mobilenet_v2 for bench/arch.ts")
    parser.add_argument("--images", type=int, default=200, help="--bench: how many images")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.bench:
        for name in args.arch or ["resnet18", "mobilenet_v2"]:
            export_bench(name, args.out or os.path.join(root, ".rlab-cache", "arch-bench"), args.images)
        return
    args.out = args.out or os.path.join(root, ".rlab-cache", "arch-fixtures")
    for name in args.arch or list(ARCHS):
        export(name, args.out)


if __name__ == "__main__":
    main()
