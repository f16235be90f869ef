"""Fixtures of the expense tests (the builders are in houses.py)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # houses: the shared builders

from houses import SITE  # noqa: E402

from sitegate.cloud.billing.sitemodel import SiteModel, parse_site  # noqa: E402
from sitegate.cloud.expense.spec import PeriodSpec, parse_spec  # noqa: E402


@pytest.fixture
def site():
    def build(**sections: Any) -> SiteModel:
        data = copy.deepcopy(SITE)
        for k, v in sections.items():
            if k in ("meters", "meter_assignments"):
                data[k] = data.get(k, []) + copy.deepcopy(v)
            else:
                data[k] = copy.deepcopy(v)
        return parse_site(data)
    return build


@pytest.fixture
def period():
    def build(model: SiteModel | None = None, **sections: Any) -> PeriodSpec:
        data: dict[str, Any] = {"period": {"id": "2025", "from": "2025-01-01",
                                           "to": "2026-01-01", "profile": "de-heizkostenv"}}
        head = sections.pop("head", {})
        data["period"].update(head)
        data.update(copy.deepcopy(sections))
        return parse_spec(data, model)
    return build
