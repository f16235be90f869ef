"""Fixtures of the web tests (helpers in console_kit.py, importable by the tests)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from console_kit import Console, make_console  # noqa: E402


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    yield from make_console(tmp_path)
