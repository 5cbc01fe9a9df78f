"""Shared helpers for the Robustness Lab demo model (Fashion-MNIST CNN).

Used by scripts/train_demo_model.py, scripts/reference_attacks.py and
bench/torch_reference.py. The reference scripts rebuild the torch module from
the ONNX initializers so that their output is tied to the committed .onnx file.
"""
import gzip
import hashlib
import struct

import numpy as np
import torch
import torch.nn as nn

CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- IDX files

def read_idx(path):
    """Read an (optionally gzipped) IDX file into a numpy array (uint8)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: unsupported IDX header")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size mismatch")
    return arr.reshape(dims)


def write_idx_gz(path, arr):
    """Write a uint8 array as gzipped IDX (mtime=0 for reproducible bytes)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim)
    header += struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                           compresslevel=9) as gz:
            gz.write(header + arr.tobytes())


def load_images(path, limit=None):
    """IDX images -> float32 tensor [N,1,28,28] in [0,1] (x/255)."""
    imgs = read_idx(path)
    if limit is not None:
        imgs = imgs[:limit]
    x = torch.from_numpy(imgs.astype(np.float32) / np.float32(255.0))
    return x.reshape(-1, 1, imgs.shape[1], imgs.shape[2])


def load_labels(path, limit=None):
    labels = read_idx(path)
    if limit is not None:
        labels = labels[:limit]
    return torch.from_numpy(labels.astype(np.int64))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------- ONNX -> torch module

def load_from_onnx(onnx_path):
    """Rebuild FashionCNN from the initializers of the exported ONNX model.

    The weights are matched by the node that consumes them (Conv / Gemm /
    MatMul+Add), in graph order, so this does not depend on initializer names.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(onnx_path)
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    # Constant nodes can also hold weights after some exports.
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = numpy_helper.to_array(a.t)

    convs, linears = [], []
    for n in g.node:
        if n.op_type == "Conv":
            w = inits[n.input[1]]
            b = inits[n.input[2]] if len(n.input) > 2 else None
            convs.append((w, b))
        elif n.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = inits[n.input[1]]
            if not attrs.get("transB", 0):
                w = w.T  # stored as [in,out]
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 \
                    or attrs.get("beta", 1.0) != 1.0:
                raise ValueError("unsupported Gemm attributes")
            b = inits[n.input[2]] if len(n.input) > 2 else None
            linears.append((w, b))
        elif n.op_type == "MatMul":
            w = inits[n.input[1]].T
            # find the following Add that holds the bias
            bias = None
            for m in g.node:
                if m.op_type == "Add" and n.output[0] in m.input:
                    other = [i for i in m.input if i != n.output[0]][0]
                    bias = inits.get(other)
            linears.append((w, bias))

    if len(convs) != 2 or len(linears) != 2:
        raise ValueError(f"unexpected graph: {len(convs)} conv, {len(linears)} linear")

    net = FashionCNN()
    layers = [net.features[0], net.features[3], net.classifier[1], net.classifier[3]]
    with torch.no_grad():
        for layer, (w, b) in zip(layers, convs + linears):
            wt = torch.from_numpy(np.array(w, dtype=np.float32, order="C"))
            if tuple(wt.shape) != tuple(layer.weight.shape):
                raise ValueError(f"shape mismatch {tuple(wt.shape)} vs {tuple(layer.weight.shape)}")
            layer.weight.copy_(wt)
            if b is not None:
                layer.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32, order="C")))
            else:
                layer.bias.zero_()
    net.eval()
    return net
