"""The fleet as the console shows it: every gateway a person may see, online or not and
since when, its last reading, backlog, buffer epoch, configuration applied or refused, and
its recent alarms, and its last commissioning report (verdict, date, a link to it). Built
from the same registry the API's ``/gateways`` returns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from sitegate.cloud.auth.users import ALL_SITES, Principal
from sitegate.cloud.billing import ops
from sitegate.cloud.store import commissioning, console
from sitegate.cloud.web.models import site_model

ALARM_HOURS = 24


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def site_of_gateways(engine: Engine) -> dict[str, str]:
    """gateway -> site: its enrolment, else the site model that lists it."""
    out: dict[str, str] = {}
    for site in ops.sites(engine):
        model = site_model(engine, site)
        for g in model.site.gateways if model is not None else ():
            out.setdefault(g, site)
    with engine.connect() as conn:
        out.update(console.gateway_sites(conn))
    return out


def fleet(engine: Engine, me: Principal, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    sites = site_of_gateways(engine)
    every = any(r.site == ALL_SITES and r.role == "operator" for r in me.roles)
    with engine.connect() as conn:
        rows = [r for r in console.gateway_rows(conn)
                if every or (r["gateway_id"] in sites
                             and me.may("gateways.list", sites[r["gateway_id"]]))]
        ids = [r["gateway_id"] for r in rows]
        last = console.last_readings(conn, ids)
        alarms = console.recent_alarms(conn, ids, now - timedelta(hours=ALARM_HOURS))
        reports = commissioning.latest_of(conn, ids)
    out = []
    for r in rows:
        g = r["gateway_id"]
        status = json.loads(r["status"]) if r["status"] else {}
        backlog = status.get("backlog") or {}
        mine = [a for a in alarms if a["gateway_id"] == g]
        out.append({
            "gateway": g, "site": sites.get(g), "online": bool(r["online"]),
            "since": status.get("ts") or _utc(r["last_seen"]),
            "last_seen": _utc(r["last_seen"]), "last_reading": _utc(last.get(g)),
            "backlog": sum(v for v in backlog.values() if isinstance(v, int)),
            "epoch": status.get("epoch"),
            "config_version": r["applied_config_version"],
            "config_rejected": status.get("config_rejected"),
            "alarms": len(mine),
            "last_alarm": f"{mine[0]['kind']} ({mine[0]['severity']})" if mine else None,
            "commissioning": reports.get(g),
        })
    return out
