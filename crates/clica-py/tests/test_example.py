"""The PyTorch example runs end to end (trains with torch when it is installed, else scores
the identity baseline and says so)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch_encoder.py"


def test_the_torch_example_runs():
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", "3", "--batch", "32", "--eval-samples", "256", "--cond-pool", "100"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "identity baseline: r2 " in proc.stdout
    if importlib.util.find_spec("torch") is None:
        assert "torch is not installed" in proc.stdout
    else:
        assert "encoder: r2 " in proc.stdout, proc.stdout
