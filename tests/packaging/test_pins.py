"""packaging/requirements-gateway.txt pins exactly the gateway's dependencies (walked from
sitegate's metadata, extras of dependencies included, no cloud extra): a dependency added
to pyproject.toml without a pin fails here at once instead of in the package build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_gateway_dependency_is_pinned() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "packaging" / "pin-gateway"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    text = (ROOT / "packaging" / "requirements-gateway.txt").read_text()
    assert "sqlalchemy" not in text.lower() and "fastapi" not in text.lower()
