#!/usr/bin/python3
"""torch_bench.py — the PyTorch side of scripts/bench/run.

Builds the same layers as a Darknet .cfg (the sections the reference nets
use: convolutional with groups/batch_normalize/activation, maxpool with
Darknet's padding rule, avgpool, connected, route, shortcut, softmax,
dropout) and trains it on random data, or runs inference under
torch.no_grad(), then prints, in the format of ours.c / upstream.c:

    images_per_second X loss Y batch N flops 0 maxrss_kb M

    /usr/bin/python3 torch_bench.py <cfg> <batches> <warmup> [train|infer]

Training: SGD with the cfg's learning_rate, momentum (0.9) and weight decay,
cross-entropy on the logits, batch from the cfg (128). The data is the same
as in ours.c / upstream.c: xorshift64 from seed 12345; per image, its inputs
uniform [0,1) (top 53 bits / 2^53) then its class as next % classes.
torch.set_num_threads(2) (PyTorch picks 1 on these machines by itself; the
thread count can be changed with TORCH_THREADS).
"""
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_cfg(path):
    """Sections as (name, {key: value}) in file order."""
    sections = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.split("#", 1)[0].split(";", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                sections.append((line.strip("[]").strip(), {}))
            elif "=" in line and sections:
                k, v = line.split("=", 1)
                sections[-1][1][k.strip()] = v.strip()
    return sections


def activation(name):
    return {
        "linear": None,
        "leaky": lambda x: F.leaky_relu(x, 0.1),
        "relu": F.relu,
        "logistic": torch.sigmoid,
        "tanh": torch.tanh,
        "elu": F.elu,
    }[name]


class DarknetMaxPool(nn.Module):
    """Darknet's maxpool: padding (default size-1) split as padding/2 before,
    the rest after; out = (in + padding - size) / stride + 1."""

    def __init__(self, size, stride, padding):
        super().__init__()
        self.size, self.stride = size, stride
        self.pad = (padding // 2, padding - padding // 2)

    def forward(self, x):
        if self.pad != (0, 0):
            x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]), value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Net(nn.Module):
    def __init__(self, sections):
        super().__init__()
        net = sections[0][1]
        c, h, w = int(net.get("channels", 1)), int(net.get("height", 1)), int(net.get("width", 1))
        self.layers = nn.ModuleList()
        self.kinds = []          # (kind, extra) per layer
        shapes = []              # (c, h, w) output per layer
        for name, o in sections[1:]:
            i = len(self.layers)
            extra = None
            if name in ("convolutional", "conv"):
                n, size = int(o.get("filters", 1)), int(o.get("size", 1))
                stride, groups = int(o.get("stride", 1)), int(o.get("groups", 1))
                pad = size // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
                bn = int(o.get("batch_normalize", 0))
                conv = nn.Conv2d(c, n, size, stride, pad, groups=groups, bias=not bn)
                mod = nn.Sequential(conv, nn.BatchNorm2d(n)) if bn else conv
                extra = activation(o.get("activation", "logistic"))
                c, h, w = n, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
            elif name in ("maxpool", "max"):
                size = int(o.get("size", 1))
                stride = int(o.get("stride", 1))
                padding = int(o.get("padding", size - 1))
                mod = DarknetMaxPool(size, stride, padding)
                h, w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
            elif name in ("avgpool", "avg"):
                mod = nn.AdaptiveAvgPool2d(1)
                h = w = 1
            elif name in ("connected", "conn"):
                out = int(o.get("output", 1))
                bn = int(o.get("batch_normalize", 0))
                fc = nn.Linear(c * h * w, out, bias=not bn)
                mod = nn.Sequential(fc, nn.BatchNorm1d(out)) if bn else fc
                extra = activation(o.get("activation", "logistic"))
                c, h, w = out, 1, 1
            elif name == "route":
                idx = [int(v) for v in o["layers"].split(",")]
                idx = [i + v if v < 0 else v for v in idx]
                mod = nn.Identity()
                extra = idx
                c = sum(shapes[j][0] for j in idx)
                h, w = shapes[idx[0]][1], shapes[idx[0]][2]
            elif name == "shortcut":
                frm = int(o["from"])
                frm = i + frm if frm < 0 else frm
                if shapes[frm] != (c, h, w):
                    raise SystemExit(f"torch_bench: shortcut from a layer of another shape {shapes[frm]}")
                mod = nn.Identity()
                extra = (frm, activation(o.get("activation", "linear")))
            elif name in ("softmax", "soft"):
                mod = nn.Identity()   # the cost takes the logits (cross_entropy = log_softmax + nll)
            elif name in ("dropout", "drop"):
                mod = nn.Dropout(float(o.get("probability", 0.5)))
            else:
                raise SystemExit(f"torch_bench: section [{name}] is not supported")
            self.layers.append(mod)
            self.kinds.append((name, extra))
            shapes.append((c, h, w))
        self.in_shape = (int(net.get("channels", 1)), int(net.get("height", 1)), int(net.get("width", 1)))
        self.classes = c * h * w
        # keep only the outputs a later route/shortcut reads
        self.keep = set()
        for name, extra in self.kinds:
            if name == "route":
                self.keep.update(extra)
            elif name == "shortcut":
                self.keep.add(extra[0])

    def forward(self, x):
        saved = {}
        for i, (mod, (name, extra)) in enumerate(zip(self.layers, self.kinds)):
            if name in ("convolutional", "conv", "connected", "conn"):
                if name in ("connected", "conn"):
                    x = torch.flatten(x, 1)
                x = mod(x)
                if extra is not None:
                    x = extra(x)
            elif name == "route":
                parts = [saved[j] for j in extra]
                x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
            elif name == "shortcut":
                x = x + saved[extra[0]]
                if extra[1] is not None:
                    x = extra[1](x)
            else:
                x = mod(x)
            if i in self.keep:
                saved[i] = x
        return torch.flatten(x, 1)


def xorshift_data(n, inputs, classes):
    """The same values as the C drivers (xorshift64 on Python integers)."""
    mask = (1 << 64) - 1
    s = 12345
    X = np.empty((n, inputs), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    scale = 1.0 / 9007199254740992.0
    row = [0.0] * inputs
    for i in range(n):
        for j in range(inputs):
            s ^= (s << 13) & mask
            s ^= s >> 7
            s ^= (s << 17) & mask
            row[j] = (s >> 11) * scale
        X[i] = row
        s ^= (s << 13) & mask
        s ^= s >> 7
        s ^= (s << 17) & mask
        y[i] = s % classes
    return X, y


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: torch_bench.py <cfg> <batches> <warmup> [train|infer]")
    cfg, batches, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) == 5 else "train"
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    torch.manual_seed(12345)
    sections = read_cfg(cfg)
    net_opts = sections[0][1]
    batch = int(net_opts.get("batch", 1))
    model = Net(sections)
    X, y = xorshift_data(batch, int(np.prod(model.in_shape)), model.classes)
    X = torch.from_numpy(X).view(batch, *model.in_shape)
    y = torch.from_numpy(y)
    loss = torch.zeros(())
    if mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=float(net_opts.get("learning_rate", 0.001)),
                              momentum=float(net_opts.get("momentum", 0.9)),
                              weight_decay=float(net_opts.get("decay", 0.0001)))

        def step():
            nonlocal loss
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X), y)
            loss.backward()
            opt.step()
    elif mode == "infer":
        model.eval()

        def step():
            with torch.no_grad():
                model(X)
    else:
        sys.exit(f"torch_bench: mode is train or infer, not {mode}")
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(batches):
        step()
    t = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"images_per_second {batches * batch / t:.3f} loss {float(loss):.5f} batch {batch} flops 0 maxrss_kb {rss}")


if __name__ == "__main__":
    main()
