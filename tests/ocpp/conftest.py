from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for ocpp_helpers


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
