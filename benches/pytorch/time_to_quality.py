"""R² against wall-clock seconds on Table 1 row 1, trained in PyTorch on clica's own data.

Table 1 row 1: z uniform on the unit sphere S⁹ (n = 10), z̃ ~ vMF(z, κ = 1), x = g(z) with the
paper's 3-layer leaky-ReLU mixing. The mixing is clica's own for the run seed: the script asks
`clica mix --weights` for its matrices (the same network `clica train --set seed=S` builds; the
fingerprints are printed so they can be compared), so the curves differ only in the protocol and
the implementation, not in the generator.

Protocols (written the way the reference, brendel-group/cl-ica, writes its training loop):
- `clica`: the protocol `cargo xtask reproduce` runs for this row (configs/reproduce.toml,
  docs/protocol.md, eighth study): encoder n-10n-10n-10n-n (leaky ReLU 0.01) on the input
  standardised per feature with the mean and std of 1024 observations, outputs on the unit
  sphere; B = 2048 anchors drawn in mirrored halves (the second half is −z of the first, with
  its positives negated); four positives per anchor, drawn as two vMF draws and their
  reflections about the anchor's axis; the symmetric sphere InfoNCE (τ = 1, the anchors of each
  direction as its negatives, self term kept) on the first positive, its alignment term
  replaced by the mean over the four positives; Adam at peak lr 1e-3, 100 warm-up steps, cosine
  to 1 % of the peak. The cosine spans the steps that fit in `--seconds` at the measured step
  time, so the schedule is complete when the time runs out (clica's own run plans 22,000).
- `reference`: the reference's own protocol: the paper encoder (n-10n-50n-50n-50n-50n-10n-n),
  one-sided InfoNCE with the rolled batch as negatives (cl-ica's `sim_neg = z1 @ roll(z1).T`),
  B = 6144, Adam at a constant lr 1e-4.

Every `--eval-every` seconds it scores a fresh sample of 4096 latents the way clica does (R² of
an ordinary least-squares fit with intercept from h to z, in sample, averaged over the latent
dimensions) and appends a JSON line {step, elapsed_s, r2, lr, loss}; `elapsed_s` includes the
scoring, as clica's `metrics.jsonl` does.

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 .venv/bin/python benches/pytorch/time_to_quality.py \\
        --protocol clica --seconds 600 --clica target/release/clica --out docs/time-to-quality/pytorch-clica.jsonl
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step import encoder, sphere_loss, sphere_loss_symmetric  # noqa: E402

N = 10
KAPPA = 1.0
POSITIVES = 4


def clica_mixing(clica, seed):
    """The run seed's mixing matrices and activation slope, from `clica mix --weights`."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([clica, "sample", "--dim", str(N), "--n", "2", "--seed", "0", "--out", d],
                       check=True, capture_output=True)
        out = subprocess.run([clica, "mix", "--z", os.path.join(d, "z.npy"), "--seed", str(seed),
                              "--out", os.path.join(d, "x.npy"), "--weights", os.path.join(d, "w")],
                             check=True, capture_output=True, text=True)
        meta = json.loads(out.stdout)
        ws = [torch.from_numpy(np.load(p)) for p in meta["weights"]]
    return ws, meta["negative_slope"], meta["fingerprint"]


def mix(z, ws, slope):
    h = z @ ws[0].T
    for w in ws[1:]:
        h = torch.nn.functional.leaky_relu(h, slope) @ w.T
    return h


def uniform_sphere(b, gen):
    z = torch.randn(b, N, dtype=torch.float64, generator=gen)
    return z / z.norm(dim=1, keepdim=True)


def vmf(mu, kappa, gen):
    """Wood's (1994) sampler for vMF(mu, kappa) on S^{d-1}, vectorised with rejection."""
    b, d = mu.shape
    m1 = d - 1.0
    bb = (-2.0 * kappa + math.sqrt(4.0 * kappa ** 2 + m1 ** 2)) / m1
    x0 = (1.0 - bb) / (1.0 + bb)
    c = kappa * x0 + m1 * math.log(1.0 - x0 ** 2)
    w = torch.empty(b, dtype=torch.float64)
    todo = torch.ones(b, dtype=torch.bool)
    while todo.any():
        k = int(todo.sum())
        # torch.distributions has no generator argument: draw Beta via two Gammas from `gen`.
        g1 = torch._standard_gamma(torch.full((k,), m1 / 2, dtype=torch.float64), generator=gen)
        g2 = torch._standard_gamma(torch.full((k,), m1 / 2, dtype=torch.float64), generator=gen)
        e = g1 / (g1 + g2)
        cand = (1.0 - (1.0 + bb) * e) / (1.0 - (1.0 - bb) * e)
        u = torch.rand(k, dtype=torch.float64, generator=gen)
        ok = kappa * cand + m1 * torch.log(1.0 - x0 * cand) - c >= torch.log(u)
        idx = todo.nonzero().squeeze(1)
        w[idx[ok]] = cand[ok]
        todo[idx[ok]] = False
    v = torch.randn(b, d, dtype=torch.float64, generator=gen)
    v = v - (v * mu).sum(1, keepdim=True) * mu
    v = v / v.norm(dim=1, keepdim=True)
    return w[:, None] * mu + torch.sqrt(1.0 - w ** 2)[:, None] * v


def r2_in_sample(z, h):
    """OLS with intercept from h to z, in-sample R² averaged over z's columns (clica's R²)."""
    z = z.numpy()
    a = np.hstack([h.double().numpy(), np.ones((h.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(a, z, rcond=None)
    res = ((z - a @ coef) ** 2).sum(0)
    tot = ((z - z.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - res / tot))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", choices=["clica", "reference"], required=True)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--eval-every", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0, help="clica run seed of the mixing; also torch's seed")
    ap.add_argument("--clica", default="target/release/clica")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    ws, slope, fingerprint = clica_mixing(a.clica, a.seed)

    if a.protocol == "clica":
        f, b, peak, warmup, loss_fn = encoder(N, [10 * N] * 3), 2048, 1e-3, 100, sphere_loss_symmetric
    else:
        f, b, peak, warmup, loss_fn = encoder(N), 6144, 1e-4, 0, sphere_loss
    opt = torch.optim.Adam(f.parameters(), lr=peak)

    if a.protocol == "clica":
        # Per-feature standardisation of the input, from 1024 observations (as clica's
        # `encoder.input_norm = "data"`).
        x0 = mix(uniform_sphere(1024, gen), ws, slope).float()
        x_mean, x_std = x0.mean(0), x0.std(0, unbiased=False)
    else:
        x_mean, x_std = torch.zeros(N), torch.ones(N)

    def embed(x):
        return torch.nn.functional.normalize(f((x - x_mean) / x_std), dim=-1)

    def batch():
        if a.protocol == "reference":
            z = uniform_sphere(b, gen)
            return mix(torch.cat([z, vmf(z, KAPPA, gen)]), ws, slope).float()
        # Antithetic anchors: half the batch, then its reflection -z (positives negated too).
        z = uniform_sphere(b // 2, gen)
        pos = []
        for _ in range(POSITIVES // 2):
            p = vmf(z, KAPPA, gen)
            # Reflection about the anchor's axis: 2 (z.p) z - p, an exact vMF(z) draw too.
            pos += [p, 2.0 * (z * p).sum(1, keepdim=True) * z - p]
        rows = [torch.cat([z, -z])] + [torch.cat([p, -p]) for p in pos]
        return mix(torch.cat(rows), ws, slope).float()

    def step(lr):
        for g in opt.param_groups:
            g["lr"] = lr
        x = batch()
        opt.zero_grad()
        h = embed(x)
        if a.protocol == "reference":
            loss = loss_fn(h[:b], h[b:])
        else:
            ha, hp = h[:b], h[b:].reshape(POSITIVES, b, N)
            # The symmetric loss on the first positive, its alignment term (-h.h~/tau, tau = 1)
            # replaced by the mean over all positives (clica's ExtraPositives).
            loss = loss_fn(ha, hp[0])
            align = -(ha[None] * hp).sum(-1)
            loss = loss + (align.mean(0) - align[0]).mean()
        loss.backward()
        opt.step()
        return loss.item()

    def score():
        with torch.no_grad():
            z = uniform_sphere(4096, gen)
            h = embed(mix(z, ws, slope).float())
        return r2_in_sample(z, h)

    total = None
    if a.protocol == "clica":
        # Calibrate the schedule's length on a throw-away copy of the state: time 20 steps.
        state = ({k: v.clone() for k, v in f.state_dict().items()}, opt.state_dict())
        t = time.perf_counter()
        for _ in range(20):
            step(1e-5)
        per = (time.perf_counter() - t) / 20
        f.load_state_dict(state[0])
        opt = torch.optim.Adam(f.parameters(), lr=peak)
        total = max(warmup + 1, int(a.seconds / per * 0.97))

    def lr_at(s):
        if total is None:
            return peak
        if s <= warmup:
            return peak * s / warmup
        p = (s - warmup) / max(1, total - warmup)
        return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0))))

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as out:
        head = {"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                "protocol": a.protocol, "seed": a.seed, "batch": b, "peak_lr": peak,
                "planned_steps": total, "seconds": a.seconds, "mixing_fingerprint": fingerprint}
        if a.protocol == "clica":
            head.update({"positives": POSITIVES, "antithetic_positives": True, "antithetic_anchors": True,
                         "input_norm": "data (1024 observations)", "loss": "symmetric sphere InfoNCE, tau 1"})
        out.write(json.dumps(head) + "\n")
        t0 = time.perf_counter()
        out.write(json.dumps({"step": 0, "elapsed_s": 0.0, "r2": score(), "lr": 0.0}) + "\n")
        s, last_eval, loss = 0, 0.0, float("nan")
        while True:
            el = time.perf_counter() - t0
            if el >= a.seconds or (total is not None and s >= total):
                break
            s += 1
            loss = step(lr_at(s))
            el = time.perf_counter() - t0
            if el - last_eval >= a.eval_every:
                last_eval = el
                r2 = score()
                rec = {"step": s, "elapsed_s": time.perf_counter() - t0, "r2": r2, "lr": lr_at(s), "loss": loss}
                out.write(json.dumps(rec) + "\n")
                out.flush()
                print(json.dumps(rec), flush=True)
        rec = {"step": s, "elapsed_s": time.perf_counter() - t0, "r2": score(), "lr": lr_at(s), "loss": loss,
               "final": True}
        out.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
