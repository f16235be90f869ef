"""Site models for the pages, validated once per stored version: a large site's validation
costs more than an overview's queries, and every page needs the model."""

from __future__ import annotations

import json
from functools import lru_cache

from sqlalchemy import Engine

from sitegate.cloud.billing.sitemodel import SiteModel, parse_site
from sitegate.cloud.store import console


def site_model(engine: Engine, site: str) -> SiteModel | None:
    with engine.connect() as conn:
        text = console.site_model_text(conn, site)
    return None if text is None else _parsed(text)


@lru_cache(maxsize=16)
def _parsed(text: str) -> SiteModel:
    return parse_site(json.loads(text))
