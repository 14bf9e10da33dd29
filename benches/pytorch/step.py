"""One training step of the paper's MLP encoder, written the way the reference (cl-ica) does.

Pairwise Lp distances by broadcasting (a B x B x n tensor), torch.logsumexp, Adam; both views
through the encoder. Run outside CI, in a local virtualenv with torch from PyPI, pinned to
two threads like the Rust benches:

    python3 -m venv .venv && .venv/bin/pip install torch numpy
    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 .venv/bin/python benches/pytorch/step.py

Kinds: the paper encoder forward + backward + Adam (`forward_backward`), its sphere and L1
InfoNCE steps (`sphere`, `p1`), and clica's fast-protocol step on Table 1 row 1
(`fast_symmetric`: 10n-10n-10n encoder, symmetric sphere InfoNCE). Arguments: batch sizes
and kinds to run (default: 512 2048 6144, all kinds). The kind `gemm` (only when named) times
MKL's f32 GEMM of the paper encoder's widest layer, (2·6144 × 500) · (500 × 500), the rate
its limit is stated against.

Prints one JSON line per (loss, batch) with the median seconds per step.
"""
import json
import statistics
import sys
import time

import torch

torch.set_num_threads(2)
N = 10


def encoder(n, hidden=None):
    w = [n] + (hidden or [10 * n, 50 * n, 50 * n, 50 * n, 50 * n, 10 * n]) + [n]
    layers = []
    for i in range(len(w) - 1):
        layers.append(torch.nn.Linear(w[i], w[i + 1]))
        if i < len(w) - 2:
            layers.append(torch.nn.LeakyReLU(0.01))
    return torch.nn.Sequential(*layers)


def sphere_loss(h, ht, tau=1.0):
    # cl-ica: sim_pos = (z1 * z2).sum(-1); sim_neg = z1 @ z3.T with z3 = roll(z1, 1)
    neg = torch.roll(h, 1, 0)
    pos = (h * ht).sum(-1) / tau
    sim = torch.cat([h @ neg.T / tau, pos[:, None]], dim=1)
    return (-pos + torch.logsumexp(sim, dim=1)).mean()


def sphere_loss_symmetric(h, ht, tau=1.0):
    # clica's fast protocol on Table 1 row 1: 1/2 [loss(h, ht) + loss(ht, h)], the negatives of
    # each direction being that direction's anchors, written the way the reference writes one.
    def one(a, p):
        pos = (a * p).sum(-1) / tau
        sim = torch.cat([a @ a.T / tau, pos[:, None]], dim=1)
        return (-pos + torch.logsumexp(sim, dim=1)).mean()

    return 0.5 * (one(h, ht) + one(ht, h))


def lp_loss(h, ht, p=1, tau=1.0):
    neg = torch.roll(h, 1, 0)
    pos = -torch.pow(torch.norm(h - ht, p=p, dim=-1), p)
    dneg = -torch.pow(torch.norm(h[:, None, :] - neg[None, :, :], p=p, dim=-1), p)
    sim = torch.cat([dneg, pos[:, None]], dim=1) / tau
    return (-pos / tau + torch.logsumexp(sim, dim=1)).mean()


def bench(kind, b, reps):
    torch.manual_seed(0)
    f = encoder(N, [10 * N] * 3 if kind == "fast_symmetric" else None)
    opt = torch.optim.Adam(f.parameters(), lr=1e-4)
    x = torch.randn(b, N)
    xt = x + 0.05 * torch.randn(b, N)
    times = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        h = f(torch.cat([x, xt]))
        h, ht = h[:b], h[b:]
        if kind in ("sphere", "fast_symmetric"):
            h = torch.nn.functional.normalize(h, dim=-1)
            ht = torch.nn.functional.normalize(ht, dim=-1)
            loss = sphere_loss(h, ht) if kind == "sphere" else sphere_loss_symmetric(h, ht)
        elif kind == "forward_backward":
            loss = h.sum() + ht.sum()
        else:
            loss = lp_loss(h, ht, p=int(kind[1:]))
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def gemm_rate(reps=15):
    a, w = torch.randn(12288, 500), torch.randn(500, 500)
    for _ in range(3):
        a @ w.T
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ w.T
        times.append(time.perf_counter() - t)
    flop = 2 * 12288 * 500 * 500
    return {"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(), "kind": "gemm",
            "shape": [12288, 500, 500], "median_s": statistics.median(times), "min_s": min(times),
            "gflops_at_median": flop / statistics.median(times) / 1e9, "gflops_at_min": flop / min(times) / 1e9}


if __name__ == "__main__":
    # Arguments: batch sizes and, optionally, kinds to run (default: all).
    batches = [int(a) for a in sys.argv[1:] if a.isdigit()] or [512, 2048, 6144]
    ONLY = {a for a in sys.argv[1:] if not a.isdigit()}
    if "gemm" in ONLY:
        print(json.dumps(gemm_rate()), flush=True)
    for b in batches:
        kinds = ["forward_backward", "sphere", "p1", "fast_symmetric"]
        for kind in (k for k in kinds if not ONLY or k in ONLY):
            reps = 10 if b <= 2048 else 3
            s = bench(kind, b, reps)
            print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                              "kind": kind, "batch": b, "seconds_per_step": s}), flush=True)
