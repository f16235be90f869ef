"""The cloud's HTTP API (FastAPI): gateways, readings, dead letters, and billing if present.

Every route needs an API token with the scope of its operation (``security.py``); state
changes take JSON only; only the configured host names are answered. ``/docs`` is Swagger UI
served from files installed with the app (fastapi-offline), so it works offline.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine, func, select
from starlette.middleware.trustedhost import TrustedHostMiddleware

from sitegate.cloud.api.security import json_only, needs, unguarded_routes
from sitegate.cloud.api.serve import LOOPBACK_NAMES
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import make_engine
from sitegate.cloud.web.app import create_web
from sitegate.cloud.web.settings import WebSettings

# The largest request body (a site model is a few KB; 413 beyond).
MAX_BODY_BYTES = 1024 * 1024


def create_app(db_url: str, allowed_hosts: Sequence[str] = LOOPBACK_NAMES,
               web: WebSettings | None = None, keys: str | None = None) -> FastAPI:
    """``keys``: the cloud's key directory (claim tokens carry its broker pin; default
    ``$SITEGATE_CLOUD_KEYS`` or the standard place, looked up only when one is made)."""
    engine = make_engine(db_url)
    app = FastAPIOffline(title="sitegate cloud", version="1", redoc_url=None,
                         dependencies=[Depends(json_only)], max_body_size=MAX_BODY_BYTES,
                         # no badge fetched from the public validator: nothing leaves the box
                         swagger_ui_parameters={"validatorUrl": None})
    app.state.engine = engine
    app.state.keys = keys
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts),
                       www_redirect=False)

    @app.get("/health", dependencies=needs("health"))
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/gateways", dependencies=needs("gateways.list"))
    def list_gateways() -> list[dict[str, Any]]:
        return gateways(engine)

    @app.get("/gateways/{gateway_id}", dependencies=needs("gateways.show"))
    def one_gateway(gateway_id: str) -> dict[str, Any]:
        for g in gateways(engine):
            if g["gateway_id"] == gateway_id:
                return g
        raise HTTPException(404, f"no gateway {gateway_id!r}")

    @app.get("/readings", dependencies=needs("readings.list"))
    def list_readings(
        gateway_id: str | None = None, meter_id: str | None = None,
        quantity: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
        unsynced: bool = Query(False, description="only readings taken with an unsynced clock"),
        limit: int = Query(1000, ge=1, le=100_000),
        order: Literal["latest", "oldest"] = Query(
            "latest", description="the newest rows, or the first ones (paging from since)"),
    ) -> list[dict[str, Any]]:
        return readings(engine, gateway_id=gateway_id, meter_id=meter_id, quantity=quantity,
                        since=since, until=until, unsynced=unsynced, limit=limit, order=order)

    @app.get("/dead-letters", dependencies=needs("dead-letters.list"))
    def list_dead_letters(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        return dead_letters(engine, limit)

    from sitegate.cloud.api import claim_tokens  # enrolment of gateways (gateway:admin)

    app.include_router(claim_tokens.router)
    try:
        billing = importlib.import_module("sitegate.cloud.api.billing")
    except ModuleNotFoundError as exc:
        if exc.name != "sitegate.cloud.api.billing":
            raise
    else:
        app.include_router(billing.router)
        from sitegate.cloud.api import readings_import  # readings from outside (billing)

        app.include_router(readings_import.router)
        from sitegate.cloud.api import expense  # expense statements (issue 15)

        app.include_router(expense.router)
        from sitegate.cloud.api import stays  # stay settlements (issue 16)

        app.include_router(stays.router)
        from sitegate.cloud.api import payments  # bank statements in (issue 16)

        app.include_router(payments.router)
        from sitegate.cloud.api import jobs  # quote-to-invoice jobs (issue 16)

        app.include_router(jobs.router)
    if unguarded := unguarded_routes(app):
        raise RuntimeError(f"routes without an API token check: {unguarded}")
    # the web console: its own app (forms with CSRF tokens, sessions), same engine and hosts
    app.mount("/web", create_web(engine, web))
    return app


# Queries shared by the API and the CLI ------------------------------------------------------


def gateways(engine: Engine) -> list[dict[str, Any]]:
    """The registry, with each stream's acknowledged mark and the unsynced-clock count."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.gateways).order_by(t.gateways.c.gateway_id)).mappings().all()
        # One mark per buffer epoch: the most recently moved one (the current buffer) wins.
        marks = conn.execute(select(t.acks).order_by(t.acks.c.updated_at)).mappings().all()
    unsynced = unsynced_counts(engine)
    out = []
    for r in rows:
        d = dict(r)
        d["status"] = json.loads(d["status"]) if d["status"] else None
        d["acked_upto"] = {m["stream"]: m["upto"] for m in marks
                           if m["gateway_id"] == r["gateway_id"]}
        d["unsynced_readings"] = unsynced.get(r["gateway_id"], 0)
        out.append(d)
    return out


def readings(
    engine: Engine, *, gateway_id: str | None = None, meter_id: str | None = None,
    quantity: str | None = None, since: datetime | None = None, until: datetime | None = None,
    unsynced: bool = False, limit: int = 1000, order: Literal["latest", "oldest"] = "latest",
) -> list[dict[str, Any]]:
    """The newest ``limit`` matching rows (``order="oldest"``: the first ones, e.g. to page
    forward from ``since``), returned in time order either way."""
    c = t.readings.c
    keys = (c.ts, c.gateway_id, c.seq)
    q = select(t.readings).order_by(*(keys if order == "oldest" else (k.desc() for k in keys)))
    q = q.limit(limit)
    for col, val in ((c.gateway_id, gateway_id), (c.meter_id, meter_id), (c.quantity, quantity)):
        if val is not None:
            q = q.where(col == val)
    # Stored in UTC (naive on SQLite): compare in UTC.
    if since is not None:
        q = q.where(c.ts >= _utc(since))
    if until is not None:
        q = q.where(c.ts < _utc(until))
    if unsynced:
        q = q.where(c.flags.like('%"clock_unsynced"%'))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    for r in rows:
        r["flags"] = json.loads(r["flags"])
    return rows if order == "oldest" else rows[::-1]


def unsynced_counts(engine: Engine) -> dict[str, int]:
    """Readings per gateway taken while its clock was not synchronized."""
    c = t.readings.c
    q = (select(c.gateway_id, func.count()).where(c.flags.like('%"clock_unsynced"%'))
         .group_by(c.gateway_id))
    with engine.connect() as conn:
        return {g: n for g, n in conn.execute(q).all()}


def _utc(d: datetime) -> datetime:
    return d.astimezone(UTC) if d.tzinfo else d


def dead_letters(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    c = t.dead_letters.c
    with engine.connect() as conn:
        rows = conn.execute(select(t.dead_letters).order_by(c.id.desc()).limit(limit)).mappings()
        out = []
        for r in rows:
            d = dict(r)
            raw: bytes = d.pop("payload")
            d["bytes"] = len(raw)
            d["preview"] = raw[:200].decode("utf-8", "replace")
            out.append(d)
    return out
