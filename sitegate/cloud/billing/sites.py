"""Site models in the database: import (validated) and read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from sitegate.cloud.billing.sitemodel import SiteModel, parse_site, site_to_json
from sitegate.cloud.billing.tables import billing_sites


class NotFound(LookupError):
    pass


def canonical(doc: object) -> str:
    """The one JSON spelling of a document: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def save_site(conn: Connection, model: SiteModel) -> dict:
    """Insert or replace the site's model; invoices already issued keep their documents."""
    text = canonical(site_to_json(model))
    row = {"site_id": model.site.id, "model": text, "imported_at": datetime.now(UTC)}
    exists = conn.execute(select(billing_sites.c.site_id).where(
        billing_sites.c.site_id == model.site.id)).first()
    if exists:
        conn.execute(billing_sites.update().where(
            billing_sites.c.site_id == model.site.id).values(**row))
    else:
        conn.execute(billing_sites.insert().values(**row))
    return {"site": model.site.id, "replaced": bool(exists),
            "billing_points": len(model.billing_points), "accounts": len(model.accounts),
            "meters": len(model.meters)}


def load_site_model(conn: Connection, site_id: str | None) -> SiteModel:
    """The site's model; ``site_id`` may be omitted when the database holds one site."""
    rows = conn.execute(select(billing_sites.c.site_id, billing_sites.c.model)).all()
    if site_id is None:
        if len(rows) != 1:
            raise NotFound(f"{len(rows)} sites in the database: name one with --site")
        return parse_site(json.loads(rows[0][1]))
    for sid, text in rows:
        if sid == site_id:
            return parse_site(json.loads(text))
    raise NotFound(f"no site {site_id!r}: import it with 'sitegate-cloud site import FILE'")


def list_sites(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute(select(billing_sites.c.site_id).order_by("site_id"))]
