"""One training step of the KITTI conv encoder (the default encoder of clica-conv) in PyTorch:
forward + backward + Adam on random 3 x S x S images, median of a few steps after a warm-up.

Same network as `ConvEncoderConfig::kitti`: four Conv2d(4, stride 2, padding 1) with 32, 32,
64, 64 channels, Conv2d to 256 with a kernel spanning what is left (4 x 4 at 64 x 64), ReLU
after each, Linear(256, 10). Run outside CI in a local virtualenv with torch from PyPI,
pinned to two threads like the Rust benches:

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 .venv/bin/python benches/pytorch/conv_step.py [batch ...]

Prints one JSON line per batch size with the median seconds per step (and forward only).
"""
import json
import statistics
import sys
import time

import torch

torch.set_num_threads(2)


def kitti(size=64, n=10):
    layers, c = [], 3
    for out in (32, 32, 64, 64):
        layers += [torch.nn.Conv2d(c, out, 4, 2, 1), torch.nn.ReLU()]
        c = out
    left = max(size // 16, 1)
    layers += [torch.nn.Conv2d(c, 256, left), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, n)]
    return torch.nn.Sequential(*layers)


def main():
    batches = [int(a) for a in sys.argv[1:]] or [256, 1024]
    torch.manual_seed(0)
    for b in batches:
        net = kitti()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        x = torch.rand(b, 3, 64, 64)
        g = torch.randn(b, 10) * 1e-3
        steps, fwd = [], []
        for i in range(6):
            t = time.perf_counter()
            h = net(x)
            tf = time.perf_counter() - t
            opt.zero_grad(set_to_none=True)
            h.backward(g)
            opt.step()
            if i > 0:
                steps.append(time.perf_counter() - t)
                fwd.append(tf)
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "batch": b, "size": 64, "step_s": statistics.median(steps),
                          "forward_s": statistics.median(fwd)}), flush=True)


if __name__ == "__main__":
    main()
