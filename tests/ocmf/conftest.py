from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the OCPP tests' harness (a real central system on a free port, a real buffer)
sys.path.insert(0, str(Path(__file__).parents[1] / "ocpp"))


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
