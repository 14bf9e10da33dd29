"""Each latent's R² against the step for Table 3 row 1 at 18,000 steps, beside the presets'
6,000-step run (seed 0 of both), from the committed metrics.

    python docs/3dident/plot_long_run.py    # needs matplotlib; writes docs/3dident/long-run.png
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = HERE.parent / "protocol-runs"
NAMES = ["x", "y", "z", "α", "β", "γ", "spotlight θ", "hue object", "hue spotlight", "hue floor"]


def curves(run):
    steps, per, r2, mcc = [], [], [], []
    for line in (RUNS / run / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m.get("r2_per_latent") is None or m["step"] < 250:
            continue
        steps.append(m["step"])
        per.append(m["r2_per_latent"])
        r2.append(m["r2"])
        mcc.append(m["mcc"])
    return steps, per, r2, mcc


def main():
    long_steps, long_per, long_r2, long_mcc = curves("t3-nb-18k")
    short_steps, short_per, short_r2, short_mcc = curves("t3-nb-6k-tau0.02")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for k in range(10):
        rotation = 3 <= k <= 5
        ax.plot(
            long_steps,
            [p[k] for p in long_per],
            lw=2.0 if rotation else 0.8,
            color=f"C{k}" if rotation else "0.6",
            label=NAMES[k] if rotation else None,
        )
        if rotation:
            ax.plot(short_steps, [p[k] for p in short_per], lw=1.0, ls="--", color=f"C{k}")
    ax.plot([], [], color="0.6", lw=0.8, label="the other seven")
    ax.plot([], [], color="k", ls="--", lw=1.0, label="6,000-step run (rotations)")
    ax.set_title("R² of each latent")
    ax.set_xlabel("step")
    ax.set_ylabel("R²")
    ax.set_ylim(0, 1)
    ax.legend(loc="center left", bbox_to_anchor=(0.0, 0.62), fontsize=8)
    bx.plot(long_steps, long_r2, color="C0", label="R², 18,000 steps")
    bx.plot(long_steps, long_mcc, color="C1", label="MCC, 18,000 steps")
    bx.plot(short_steps, short_r2, color="C0", ls="--", label="R², 6,000 steps")
    bx.plot(short_steps, short_mcc, color="C1", ls="--", label="MCC, 6,000 steps")
    bx.axhline(0.96, color="C0", lw=0.6, ls=":")
    bx.axhline(0.98, color="C1", lw=0.6, ls=":", label="targets (R² 0.96, MCC 0.98)")
    bx.set_title("R² (mean over the latents) and MCC")
    bx.set_xlabel("step")
    bx.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        "Table 3 row 1 (Normal, box), 3DIdent-like (clica-rendered) 64 × 64, KITTI conv net, seed 0",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(HERE / "long-run.png", dpi=110)


if __name__ == "__main__":
    main()
