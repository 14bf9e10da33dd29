"""Train a PyTorch encoder on clica's data-generating process and score it with clica.evaluate.

    python crates/clica-py/examples/torch_encoder.py [--config configs/table1/row01.toml]
        [--steps 2000] [--batch 512] [--lr 1e-4] [--tau 0.1] [--set data.conditional.kappa=10]

The batches (x, x̃, z) come from `clica.Data(config).batches()`: anchors and positives from the
configuration's prior, pushed through the mixing g that `clica train` would use for the same
seed. The encoder is the paper's MLP (n → 10n → 50n → … → n, LeakyReLU) with outputs on the
unit sphere, trained with the sphere InfoNCE loss (negatives: the batch's other positives,
temperature `tau`). Its representation of fresh samples is scored with `clica.evaluate`,
next to the identity baseline (x itself).

Without torch installed the script scores only the identity baseline and says so.
"""

import argparse
import sys
import time

import numpy as np

import clica


def identity_baseline(data, n):
    x, z = data.sample(n)
    return clica.evaluate(z, x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None, help="a clica run configuration (TOML); default: Table 1 row 1")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--eval-samples", type=int, default=4096)
    ap.add_argument("--cond-pool", type=int, default=None, help="override mixing.cond_pool (the paper: 25000)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a configuration override, as clica train --set")
    args = ap.parse_args(argv)

    overrides = [f"train.batch={args.batch}", f"train.steps={args.steps}", *args.set]
    if args.cond_pool is not None:
        overrides.append(f"mixing.cond_pool={args.cond_pool}")
    data = clica.Data(args.config, overrides=overrides)
    print(f"data: {data!r}")
    base = identity_baseline(data, args.eval_samples)
    print(f"identity baseline: r2 {base['r2']:.4f}  mcc {base['mcc_pearson']:.4f}")

    try:
        import torch
        from torch import nn
    except ImportError:
        print("torch is not installed: `pip install torch` to train the encoder; only the baseline was scored")
        return {"identity": base, "encoder": None}

    torch.manual_seed(0)
    n = data.latent_dim
    widths = [data.observation_dim] + [m * n for m in (10, 50, 50, 50, 50, 10)]
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.01)]
    layers.append(nn.Linear(widths[-1], n))
    encoder = nn.Sequential(*layers)
    opt = torch.optim.Adam(encoder.parameters(), lr=args.lr)

    def embed(x):
        return nn.functional.normalize(encoder(x), dim=1)

    start = time.time()
    for step, (x, x_tilde, _z) in enumerate(data.batches(), start=1):
        h = embed(torch.from_numpy(x))
        h_tilde = embed(torch.from_numpy(x_tilde))
        logits = h @ h_tilde.T / args.tau  # row i: anchor i against every positive
        loss = nn.functional.cross_entropy(logits, torch.arange(len(h)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % max(1, args.steps // 10) == 0:
            print(f"step {step}/{args.steps}  loss {loss.item():.4f}  {time.time() - start:.1f}s")

    x, z = data.sample(args.eval_samples)
    with torch.no_grad():
        h = embed(torch.from_numpy(x.astype(np.float32))).numpy()
    scores = clica.evaluate(z, h)
    print(f"encoder: r2 {scores['r2']:.4f}  r2_held_out {scores['r2_held_out']:.4f}  mcc {scores['mcc_pearson']:.4f}")
    return {"identity": base, "encoder": scores}


if __name__ == "__main__":
    main()
    sys.exit(0)
