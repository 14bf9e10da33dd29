"""One training step of the KITTI conv encoder (the default encoder of clica-conv) in PyTorch:
forward + backward + Adam on random 3 x S x S images, median of a few steps after a warm-up.

Same network as `ConvEncoderConfig::kitti`: four Conv2d(4, stride 2, padding 1) with 32, 32,
64, 64 channels, Conv2d to 256 with a kernel spanning what is left (4 x 4 at 64 x 64), ReLU
after each, Linear(256, 10). Run outside CI in a local virtualenv with torch from PyPI,
pinned to two threads like the Rust benches:

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 .venv/bin/python benches/pytorch/conv_step.py [batch ...]
    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 .venv/bin/python benches/pytorch/conv_step.py --resnet18 [batch ...]

`--resnet18` times ResNet-18 instead (torchvision's architecture written out here, since
torchvision is not installed: 7 x 7 stem with batch norm, max-pool, four stages of two basic
blocks, average pool, fc to 100), followed by the paper's LeakyReLU and Linear(100, 10), as
`ResNetConfig::resnet18` in clica-conv.

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


class Basic(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


def resnet18(n=10):
    layers = [torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
              torch.nn.MaxPool2d(3, 2, 1)]
    c = 64
    for s, w in enumerate((64, 128, 256, 512)):
        for b in range(2):
            layers.append(Basic(c, w, 2 if s > 0 and b == 0 else 1))
            c = w
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(512, 10 * n),
               torch.nn.LeakyReLU(), torch.nn.Linear(10 * n, n)]
    return torch.nn.Sequential(*layers)


def main():
    args = sys.argv[1:]
    arch = "kitti"
    if args and args[0] == "--resnet18":
        arch, args = "resnet18", args[1:]
    batches = [int(a) for a in args] or [256, 1024]
    torch.manual_seed(0)
    for b in batches:
        net = resnet18() if arch == "resnet18" else kitti()
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
        print(json.dumps({"impl": "pytorch", "arch": arch, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "batch": b, "size": 64, "step_s": statistics.median(steps),
                          "forward_s": statistics.median(fwd)}), flush=True)


if __name__ == "__main__":
    main()
