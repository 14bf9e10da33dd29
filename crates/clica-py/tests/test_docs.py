"""The examples in the documentation run: the crate root's (src/lib.rs) and the package's
docstring (a doctest)."""

import doctest
import re
from pathlib import Path

import clica

CRATE = Path(__file__).resolve().parents[1]


def test_the_crate_root_example_runs():
    text = (CRATE / "src" / "lib.rs").read_text()
    doc = "\n".join(line[4:] if line.startswith("//! ") else line[3:] for line in text.splitlines() if line.startswith("//!"))
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "src/lib.rs", "exec"), {})


def test_the_package_docstring_is_a_passing_doctest():
    result = doctest.testmod(clica, verbose=False)
    assert result.attempted > 0 and result.failed == 0
