"""Site models in the database: import (validated) and read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sitegate.cloud.billing.sitemodel import SiteModel, parse_site, site_to_json
from sitegate.cloud.store import billing as store
from sitegate.cloud.store.billing import Conn as Connection


class NotFound(LookupError):
    pass


def canonical(doc: object) -> str:
    """The one JSON spelling of a document: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def save_site(conn: Connection, model: SiteModel) -> dict:
    """Insert or replace the site's model; invoices already issued keep their documents."""
    text = canonical(site_to_json(model))
    exists = store.put_site_model(conn, model.site.id, text, datetime.now(UTC))
    return {"site": model.site.id, "replaced": bool(exists),
            "billing_points": len(model.billing_points), "accounts": len(model.accounts),
            "meters": len(model.meters)}


def load_site_model(conn: Connection, site_id: str | None) -> SiteModel:
    """The site's model; ``site_id`` may be omitted when the database holds one site."""
    rows = store.site_models(conn)
    if site_id is None:
        if len(rows) != 1:
            raise NotFound(f"{len(rows)} sites in the database: name one with --site")
        return parse_site(json.loads(rows[0][1]))
    for sid, text in rows:
        if sid == site_id:
            return parse_site(json.loads(text))
    raise NotFound(f"no site {site_id!r}: import it with 'sitegate-cloud site import FILE'")


def list_sites(conn: Connection) -> list[str]:
    return [sid for sid, _ in store.site_models(conn)]
