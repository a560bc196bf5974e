"""docs/sdk.md stays runnable: its Python blocks run, in order, in one namespace (the
first block starts its own embedded cloud)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "sdk.md"


def test_every_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VZCLOUD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 15
    namespace: dict[str, object] = {"__name__": "sdk_docs"}
    for number, code in enumerate(blocks, start=1):
        exec(compile(code, f"{DOC}:block{number}", "exec"), namespace)
