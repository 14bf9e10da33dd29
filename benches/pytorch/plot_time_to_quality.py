"""The time-to-quality figure of docs/time-to-quality/: R² against wall-clock seconds on
Table 1 row 1, for clica's protocol and the reference's, each in clica and in PyTorch.

Reads the run files copied into docs/time-to-quality/ (clica: `metrics.jsonl` of a `clica train`
run folder; PyTorch: the JSON lines of time_to_quality.py) and writes r2_vs_seconds.svg there.

    .venv/bin/pip install matplotlib
    .venv/bin/python benches/pytorch/plot_time_to_quality.py docs/time-to-quality
"""
import json
import os
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

CURVES = [
    # file, label, colour, dashed
    ("clica-clica-protocol.jsonl", "clica, clica's protocol (B 2048, 4 antithetic positives, antithetic anchors, lr 1e-3 cosine)", "#1f77b4", False),
    ("pytorch-clica-protocol.jsonl", "PyTorch, clica's protocol", "#1f77b4", True),
    ("clica-reference-protocol.jsonl", "clica, the reference's protocol (B 6144, lr 1e-4)", "#d62728", False),
    ("pytorch-reference-protocol.jsonl", "PyTorch, the reference's protocol", "#d62728", True),
]


def points(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        if "elapsed_s" in r and r.get("r2") is not None:
            out.append((r["elapsed_s"], 100.0 * r["r2"]))
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "docs/time-to-quality"
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, label, colour, dashed in CURVES:
        p = os.path.join(d, name)
        if not os.path.exists(p):
            print(f"missing {p}, left out", file=sys.stderr)
            continue
        xs, ys = zip(*points(p))
        ax.plot(xs, ys, label=label, color=colour, linestyle="--" if dashed else "-", marker=".", markersize=3)
    ax.axhline(99.42, color="#444", linewidth=0.8, linestyle=":")
    ax.text(5, 99.6, "paper 99.42 (300,000 steps at B 6144)", fontsize=8, color="#444")
    ax.axvline(600, color="#999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("wall-clock seconds on 2 cores (training and scoring)")
    ax.set_ylabel("R² (%), 4096 fresh samples")
    ax.set_title("Table 1 row 1 (sphere, uniform, vMF κ = 1, n = 10): time to quality")
    ax.set_ylim(20, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = os.path.join(d, "r2_vs_seconds.svg")
    fig.savefig(out, metadata={"Date": None})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
