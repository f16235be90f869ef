"""Site administration as operators run it: the site's status through its life, notes and
open issues someone must address and close, who the stakeholders are, and who bears the
costs of invoices that were not paid (cancelled: the operator; written off: the owner).

Reading needs the scope of ``site.show``; changing needs the one of ``site.import`` (the
site's administration, ``site:admin``), as the API's site import does."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from sitegate.cloud.store import console
from sitegate.cloud.store import users as people
from sitegate.cloud.store.tables_web import SITE_STATES
from sitegate.cloud.web.app import page
from sitegate.cloud.web.guard import Form, Login, allow
from sitegate.cloud.web.routes_invoices import _model

router = APIRouter()
MAX_NOTE = 2000


@router.get("/sites/{site}/admin")
def admin_page(request: Request, me: Login, site: str) -> Response:
    allow(me, "site.equipment", site)
    model = _model(request, site)
    with request.app.state.engine.connect() as conn:
        status = people.site_status(conn, site)
        notes = people.site_notes(conn, site)
        staff = people.site_people(conn, site)
        borne = [r for r in console.invoice_summaries(conn, site) if r["borne_by"]]
        evs = console.event_amounts(conn, site)
    for r in borne:
        r["written_off"] = next((e["amount"] for e in evs.get(r["id"], ())
                                 if e["kind"] == "write_off"), None)
    names = {a.id: a.name for a in model.accounts}
    owners = sorted({names.get(p.owner, p.owner) for p in model.billing_points})
    return page(request, "admin.html", {
        "site": site, "model": model, "status": status, "states": SITE_STATES,
        "notes": notes, "open": [n for n in notes if n["kind"] == "issue"
                                 and n["closed_at"] is None],
        "staff": staff, "owners": owners, "borne": borne, "names": names,
        "can_edit": me.may("site.import", site)})


def _back(request: Request, site: str) -> Response:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/sites/{site}/admin", 303)


@router.post("/sites/{site}/admin/status")
def set_status(request: Request, me: Login, f: Form, site: str) -> Response:
    allow(me, "site.import", site)
    _model(request, site)
    status = f.get("status", "")
    if status not in SITE_STATES:
        raise HTTPException(400, "bad_state")
    with request.app.state.engine.begin() as conn:
        people.set_site_status(conn, site, status, datetime.now(UTC), me.email)
    return _back(request, site)


@router.post("/sites/{site}/admin/notes")
def add_note(request: Request, me: Login, f: Form, site: str) -> Response:
    allow(me, "site.import", site)
    _model(request, site)
    text = f.get("text", "").strip()
    kind = f.get("kind", "note")
    if not text or len(text) > MAX_NOTE or kind not in ("note", "issue"):
        raise HTTPException(400, "bad_note")
    with request.app.state.engine.begin() as conn:
        people.add_site_note(conn, site_id=site, kind=kind, text=text,
                             created_at=datetime.now(UTC), created_by=me.email)
    return _back(request, site)


@router.post("/sites/{site}/admin/notes/{note_id}/close")
def close_issue(request: Request, me: Login, f: Form, site: str, note_id: int) -> Response:
    allow(me, "site.import", site)
    with request.app.state.engine.begin() as conn:
        if not people.close_site_issue(conn, site, note_id, datetime.now(UTC), me.email):
            raise HTTPException(404, "not_found")
    return _back(request, site)
