"""gofmt is a leaf: importing it loads nothing else of shardbroker (errors.py imports it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_gofmt_imports_nothing_else_of_shardbroker() -> None:
    code = (
        "import sys; import shardbroker.gofmt.duration, shardbroker.gofmt.timestamp, "
        "shardbroker.gofmt.quote, shardbroker.gofmt.strconv; "
        "print(sorted(m for m in sys.modules if m.startswith('shardbroker') "
        "and not m.startswith('shardbroker.gofmt') and m != 'shardbroker'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
