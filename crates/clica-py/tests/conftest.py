"""Shared helpers of the clica package's tests: the `clica` binary, the fixtures, tiny runs."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"

# A tiny run (n = 3, 30 steps, batch 64, small evaluation), as the Rust CLI tests use.
TINY = [
    "data.dim=3",
    "train.steps=30",
    "train.batch=64",
    "mixing.cond_pool=100",
    "eval.samples=256",
    "eval.final_batches=1",
]


def clica_bin() -> Path:
    """The release `clica` binary: $CLICA_BIN (set by `cargo xtask ci`), else target/release/clica."""
    path = Path(os.environ.get("CLICA_BIN", ROOT / "target" / "release" / "clica"))
    if not path.is_file():
        pytest.fail(f"no clica binary at {path}: run `cargo build --release -p clica` or set CLICA_BIN")
    return path


def run_clica(*args, check=True):
    """Runs `clica args…` and returns the completed process (text output)."""
    proc = subprocess.run(
        [str(clica_bin()), *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"clica {' '.join(map(str, args))} failed ({proc.returncode}): {proc.stderr}")
    return proc


def cli_error(*args) -> str:
    """The one-line error `clica args…` prints, without its `error: ` prefix."""
    proc = run_clica(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0][len("error: "):]


def load_fixture(name):
    with open(FIXTURES / name) as f:
        return json.load(f)


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Byte-identical arrays: dtype, shape and every bit of every value."""
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def without_timings(summary: dict) -> dict:
    s = dict(summary)
    s.pop("train_seconds", None)
    s.pop("seconds_per_step", None)
    s.pop("step_phases", None)
    return s
