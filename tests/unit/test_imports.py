"""Each entry module imports on its own in a fresh interpreter (no circular imports),
and the layer contracts of STYLE.md hold (import-linter)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ENTRY_MODULES = [
    "shardbroker",
    "shardbroker.cli",
    "shardbroker.worker.main",
    "shardbroker.supervisor.arbiter",
    "shardbroker.protocol.parser",
    "shardbroker.mesh.mesh",
    "shardbroker.config.options",
    "shardbroker.bench.runner",
    "shardbroker.tools.jwt_cli",
]


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_imports_entry_module_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_imports_pure_layers_stay_free_of_the_event_loop() -> None:
    code = (
        "import sys; import shardbroker.protocol.parser, shardbroker.protocol.frames, "
        "shardbroker.mesh.mesh, shardbroker.config.options; "
        "print(sorted(m for m in ('asyncio', 'uvloop') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_imports_layer_contracts() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.skip("import-linter is not installed in this environment")
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
