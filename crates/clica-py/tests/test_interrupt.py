"""Ctrl-C stops clica.train cleanly: the checkpoint and an `interrupted` summary are written, the
lock released, KeyboardInterrupt raised; the run then resumes to the results of an
uninterrupted one, bit for bit."""

import json
import signal
import subprocess
import sys
import time

import clica
from conftest import TINY, run_clica, without_timings

# Long enough to be interrupted (a few seconds on 2 cores), short enough to finish after.
LONG = [kv for kv in TINY if not kv.startswith("train.steps")] + [
    "train.steps=3000",
    "train.log_every=100",
    "train.checkpoint_every=0",
]

# The child takes Python's own Ctrl-C handler whatever it inherits: a shell without job
# control starts background jobs with SIGINT ignored, and Python then keeps it ignored
# (this made the test fail when CI itself ran in the background).
SCRIPT = """
import signal, sys, clica
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    clica.train(overrides=sys.argv[2:], out=sys.argv[1], progress=False)
except KeyboardInterrupt as e:
    print(f"{type(e).__name__}: {e}", flush=True)
    sys.exit(130)
print("completed", flush=True)
"""


def _interrupt(out):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), *LONG],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never logged its first step"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr


def test_ctrl_c_stops_the_run_with_a_checkpoint_and_it_resumes_exactly(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = _interrupt(out)
    assert code == 130, (stdout, stderr)
    assert "KeyboardInterrupt: interrupted after step" in stdout, stdout
    assert f"clica train --resume {out}" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert 1 <= summary["step"] < 3000
    assert (out / "checkpoint.safetensors").exists()
    assert not (out / ".lock").exists()

    # Resumed from Python, the run ends as an uninterrupted `clica train` run does.
    resumed = clica.resume(out, progress=False)
    assert resumed["status"] == "completed"
    whole = json.loads(
        run_clica("train", *[a for kv in LONG for a in ("--set", kv)], "--out", tmp_path / "whole").stdout.strip().splitlines()[-1]
    )
    assert without_timings(resumed) == without_timings(whole)
    assert (out / "encoder.safetensors").read_bytes() == (tmp_path / "whole" / "encoder.safetensors").read_bytes()


def test_a_signal_handler_of_the_caller_sees_its_own_exception(tmp_path):
    """A handler other than Ctrl-C's raising stops the run the same way and its exception stands."""
    script = SCRIPT.replace(
        "signal.signal(signal.SIGINT, signal.default_int_handler)",
        "class Stop(Exception): pass\n"
        "def handler(*_): raise Stop('by the handler')\n"
        "signal.signal(signal.SIGINT, handler)",
    ).replace("except KeyboardInterrupt as e:", "except Stop as e:")
    assert "raise Stop" in script
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", script, str(out), *LONG], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Stop: by the handler" in stdout, stdout
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    assert not (out / ".lock").exists()
