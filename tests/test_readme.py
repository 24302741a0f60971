"""The README's Python quickstart runs as written and prints a solved CartPole score."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_quickstart_runs():
    text = README.read_text()
    match = re.search(r"## Quickstart in Python\s+```python\n(.*?)```", text, re.S)
    assert match, "README has no Python quickstart block"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 12
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = {}
        exec(compile(code, "README quickstart", "exec"), namespace)
    assert float(out.getvalue().split()[0]) >= 475
    assert namespace["sweep"].metrics["sigma"].shape == (3, 50)
