"""Queries of commissioning reports (``tables_commissioning``): kept by ingest from the
gateways' ``commissioning`` events, listed per site."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from sitegate.cloud.store import tables as t
from sitegate.cloud.store.tables_commissioning import commissioning_reports as R

KIND = "commissioning"


def record(conn: Connection, event_rows: list[dict[str, Any]]) -> int:
    """Ingest's event rows of kind ``commissioning`` as reports, in its transaction; a row
    already kept (a resent batch) adds nothing. A summary that is not what a gateway sends
    stays an event only."""
    values = []
    for row in event_rows:
        if row.get("kind") != KIND:
            continue
        try:
            summary = json.loads(row["payload"]).get("summary")
            values.append({
                "gateway_id": row["gateway_id"], "epoch": row["epoch"], "seq": row["seq"],
                "started_at": str(summary["started"])[:40],
                "finished_at": str(summary["finished"])[:40],
                "verdict": str(summary["verdict"])[:8],
                "meters": _count(summary["meters"]),
                "failed": _count((summary.get("meter_verdicts") or {}).get("fail", 0)),
                "problems": _count(len(summary.get("problems") or [])
                                   + _count(summary.get("problems_left_out") or 0)),
                "summary": json.dumps(summary, separators=(",", ":"), sort_keys=True),
                "received_at": row["received_at"]})
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    if not values:
        return 0
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(R).on_conflict_do_nothing(
        index_elements=["gateway_id", "epoch", "seq"]), values)
    return len(values)


def _count(value: object) -> int:
    """A count from the gateway, within what the column holds (a forged huge number must
    not make ingest refuse the whole batch of events)."""
    n = int(value)  # type: ignore[call-overload]
    if not 0 <= n <= 10**6:
        raise ValueError(f"count {n} out of range")
    return n


def site_gateways(conn: Connection, site: str) -> list[str]:
    """The gateways of a site: enrolled for it, or named in its site model."""
    found = set(conn.execute(select(t.gateway_identities.c.gateway_id).where(
        t.gateway_identities.c.site_id == site)).scalars())
    model = conn.execute(select(t.billing_sites.c.model).where(
        t.billing_sites.c.site_id == site)).scalar_one_or_none()
    if model:
        data = json.loads(model)
        named = (data.get("site") or {}).get("gateways") or data.get("gateways") or []
        found |= {str(g) for g in named}
    return sorted(found)


def reports(engine: Engine, site: str, gateway: str | None = None,
            limit: int = 100) -> dict[str, Any]:
    """The newest reports of the site's gateways (or of one gateway), newest first."""
    with engine.connect() as conn:
        gateways = site_gateways(conn, site)
        wanted = [gateway] if gateway else gateways
        rows = conn.execute(select(R).where(or_(*(R.c.gateway_id == g for g in wanted)))
                            .order_by(R.c.finished_at.desc(), R.c.id.desc())
                            .limit(limit)).mappings().all() if wanted else []
    return {"site": site, "gateways": gateways,
            "reports": [_row(r) for r in rows]}


def _row(r: Any) -> dict[str, Any]:
    summary = json.loads(r["summary"])
    received = r["received_at"]
    if isinstance(received, datetime) and received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return {"id": r["id"], "gateway_id": r["gateway_id"], "started": r["started_at"],
            "finished": r["finished_at"], "verdict": r["verdict"], "meters": r["meters"],
            "failed": r["failed"], "problems": summary.get("problems") or [],
            "chargers": summary.get("chargers"),
            "chargers_connected": summary.get("chargers_connected"),
            "received_at": received.isoformat() if isinstance(received, datetime)
            else received}


_CHUNK = 500  # gateway ids per query: well under any database's bound on parameters


def latest_of(conn: Connection, gateways: list[str]) -> dict[str, dict[str, Any]]:
    """Each gateway's newest report (by its finish, then arrival): id, verdict, finished,
    counts; without the summary (the fleet page shows the verdict and links the rest)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(gateways), _CHUNK):
        rank = func.row_number().over(partition_by=R.c.gateway_id,
                                      order_by=(R.c.finished_at.desc(), R.c.id.desc()))
        inner = (select(R.c.id, R.c.gateway_id, R.c.verdict, R.c.finished_at, R.c.meters,
                        R.c.failed, R.c.problems, rank.label("n"))
                 .where(R.c.gateway_id.in_(gateways[i:i + _CHUNK])).subquery())
        for r in conn.execute(select(inner).where(inner.c.n == 1)).mappings():
            out[r["gateway_id"]] = {k: r[k] for k in ("id", "verdict", "finished_at",
                                                      "meters", "failed", "problems")}
    return out


def report(conn: Connection, report_id: int) -> dict[str, Any] | None:
    """One report as ``reports`` lists it, with the problems left out by the gateway."""
    r = conn.execute(select(R).where(R.c.id == report_id)).mappings().first()
    if r is None:
        return None
    summary = json.loads(r["summary"])
    return {**_row(r), "problems_left_out": summary.get("problems_left_out") or 0,
            "meter_verdicts": summary.get("meter_verdicts") or {}}
