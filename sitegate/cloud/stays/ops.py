"""Stay operations over one database, shared by the CLI and the HTTP API: each opens one
transaction and returns plain JSON-ready data. Settlement documents are billing invoices
(drafts in the site's number sequence): ``invoice issue|pay|credit|pdf|explain`` apply."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from sitegate.cloud.billing import ledger
from sitegate.cloud.billing.pdf import invoice_pdf
from sitegate.cloud.billing.sitemodel import SiteModel, SiteModelError
from sitegate.cloud.billing.sites import NotFound, canonical, load_site_model
from sitegate.cloud.stays import readings as rd
from sitegate.cloud.stays.reservations import (
    STATUSES,
    Reservation,
    parse_reservations,
    to_json,
)
from sitegate.cloud.stays.settle import Settlement, Skipped, select, settle
from sitegate.cloud.stays.setup import StayMeter, StaySetup, parse_setup, setup_to_json
from sitegate.cloud.store import billing as billing_store
from sitegate.cloud.store import stays as store
from sitegate.cloud.store.billing import DB as Engine
from sitegate.cloud.store.billing import Conn as Connection


class StayError(ValueError):
    """The operation does not fit the reservation's state; the message says why."""


# Which status may follow which; checking out with a settlement is ``checkout``.
NEXT = {"reserved": {"checked_in", "cancelled"}, "checked_in": {"checked_out", "cancelled"},
        "checked_out": set(), "cancelled": {"reserved"}}


def _vat_categories(model: SiteModel) -> set[str]:
    return {r.category for r in model.vat_rates}


def import_units(engine: Engine, site: str | None, data: dict[str, Any]) -> dict[str, Any]:
    """Validate and store (replace) the site's accommodation setup."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        setup = parse_setup(data, _vat_categories(model))
        replaced = store.put_setup(conn, model.site.id, canonical(setup_to_json(setup)),
                                   store.now())
    return {"site": model.site.id, "replaced": replaced, "unit_types": len(setup.unit_types),
            "units": len(setup.units), "meters": sum(len(u.meters) for u in setup.units),
            "categories": len(setup.categories), "rates": len(setup.rates)}


def load_setup(conn: Connection, model: SiteModel) -> StaySetup:
    text = store.setup_text(conn, model.site.id)
    if text is None:
        raise NotFound(f"site {model.site.id!r} has no units: import them with "
                       "'sitegate-cloud stays units import FILE'")
    return parse_setup(json.loads(text), _vat_categories(model))


def _typed(row: dict[str, Any]) -> Reservation:
    return Reservation.model_validate({**json.loads(row["data"]), "status": row["status"]})


def _reservations(conn: Connection, site_id: str) -> tuple[dict[str, Reservation],
                                                           dict[str, dict[str, Any]]]:
    rows = store.reservations(conn, site_id)
    return {r["id"]: _typed(r) for r in rows}, {r["id"]: r for r in rows}


def setup(engine: Engine, site: str | None) -> dict[str, Any]:
    with engine.connect() as conn:
        return setup_to_json(load_setup(conn, load_site_model(conn, site)))


def import_reservations(engine: Engine, site: str | None, items: Any) -> dict[str, Any]:
    """New and changed reservations (by id), all or nothing; a settled one is not changed."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        su = load_setup(conn, model)
        typed, rows = _reservations(conn, model.site.id)
        new = parse_reservations(items, su, typed)
        settled = [f"reservations[{i}]: {r.id} is settled in invoice "
                   f"{rows[r.id]['invoice_number']}; it is not changed"
                   for i, r in enumerate(new)
                   if r.id in rows and rows[r.id]["invoice_number"] is not None]
        if settled:
            raise SiteModelError(settled)
        created = updated = 0
        at = store.now()
        for r in new:
            if r.id in rows:
                updated += 1
            else:
                created += 1
            store.upsert_reservation(conn, model.site.id, r.id, at, parent_id=r.parent,
                                     unit_id=r.unit, status=r.status,
                                     data=canonical(to_json(r)))
    return {"site": model.site.id, "created": created, "updated": updated}


def _view(r: Reservation, row: dict[str, Any]) -> dict[str, Any]:
    return {**to_json(r), "checked_out_on": row["checked_out_on"],
            "first_day": row["first_day"], "last_day": row["last_day"],
            "invoice": row["invoice_number"]}


def reservations(engine: Engine, site: str | None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        typed, rows = _reservations(conn, model.site.id)
    return [_view(typed[k], rows[k]) for k in rows]


def set_status(engine: Engine, site: str | None, rid: str, status: str) -> dict[str, Any]:
    if status not in STATUSES:
        raise StayError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        typed, rows = _reservations(conn, model.site.id)
        if rid not in typed:
            raise NotFound(f"no reservation {rid!r} at site {model.site.id!r}")
        cur = typed[rid].status
        if status not in NEXT[cur]:
            raise StayError(f"reservation {rid} is {cur}: it cannot become {status} "
                            f"(next: {', '.join(sorted(NEXT[cur])) or 'nothing'})")
        r = typed[rid].model_copy(update={"status": status})
        store.upsert_reservation(conn, model.site.id, rid, store.now(), status=status,
                                 data=canonical(to_json(r)))
        return _view(r, {**rows[rid]})


def _at(day: date | None, at: datetime | None, model: SiteModel) -> datetime:
    """A reading's instant in UTC: a naive time is the site's local time; a date alone is
    its local noon (readings are taken in the day)."""
    if at is None:
        at = datetime.combine(day, time(12)) if day else datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=model.tz)
    return at.astimezone(UTC).replace(microsecond=0)


def _neighbours(conn: Connection, site_id: str, new: list[rd.StayReading]) -> tuple[
        dict[tuple[str, str], rd.StayReading], dict[tuple[str, str], rd.StayReading]]:
    before: dict[tuple[str, str], rd.StayReading] = {}
    after: dict[tuple[str, str], rd.StayReading] = {}
    at = {(r.unit, r.meter): r.ts for r in new}
    for row in store.unit_readings(conn, site_id, sorted({r.unit for r in new})):
        key = (row["unit_id"], row["meter"])
        if key not in at:
            continue
        r = _reading(row)
        if r.ts <= at[key]:
            before[key] = r  # rows come in time order: the last one wins
        elif key not in after:
            after[key] = r
    return before, after


def _reading(row: dict[str, Any]) -> rd.StayReading:
    return rd.StayReading(row["unit_id"], row["meter"], row["ts"], row["value"],
                          bool(row["is_start"]), row["source"], row["entered_by"])


def enter_readings(engine: Engine, site: str | None, name: str, data: bytes,
                   entered_by: str, unit_type: str | None = None, day: date | None = None,
                   at: datetime | None = None, source: str = "bulk") -> dict[str, Any]:
    """A bulk list (unit, meter, value[, start]) of one reading day, for the units of a
    type: checked and stored whole, or nothing (``BulkError`` lists every problem)."""
    if not entered_by.strip():
        raise StayError("who entered the readings is needed (--by)")
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        su = load_setup(conn, model)
        if unit_type is not None and unit_type not in {t.id for t in su.unit_types}:
            raise NotFound(f"no unit type {unit_type!r}")
        when = _at(day, at, model)
        new = rd.parse_bulk(rd.rows_of(name, data), su, unit_type, when, source,
                            entered_by.strip()[:128])
        entries = rd.check(new, su, *_neighbours(conn, model.site.id, new))
        store.save_readings(conn, model.site.id, [
            {"unit_id": e.reading.unit, "meter": e.reading.meter, "ts": e.reading.ts,
             "value": format(e.reading.value, "f"), "is_start": e.reading.start,
             "source": source, "entered_by": e.reading.entered_by} for e in entries],
            store.now())
    return {"site": model.site.id, "at": when.isoformat(), "stored": len(entries),
            "readings": [{"line": e.reading.line, "unit": e.reading.unit,
                          "meter": e.reading.meter, "value": format(e.reading.value, "f"),
                          "start": e.reading.start,
                          "previous": None if e.previous is None
                          else format(e.previous.value, "f"),
                          "usage": None if e.usage is None else format(e.usage, "f")}
                         for e in entries]}


def unit_readings(engine: Engine, site: str | None, unit: str | None) -> list[dict]:
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        rows = store.unit_readings(conn, model.site.id, None if unit is None else [unit])
    return [{"unit": r["unit_id"], "meter": r["meter"],
             "at": r["ts"].astimezone(model.tz).isoformat(), "value": format(r["value"], "f"),
             "start": bool(r["is_start"]), "source": r["source"],
             "entered_by": r["entered_by"]} for r in rows]


def _gateway(conn: Connection, model: SiteModel, unit_id: str):  # type: ignore[no-untyped-def]
    """Start and end values of a gateway-read meter: its register at the start of the
    arrival day (the last reading before it) and at the end of the departure day."""
    from datetime import timedelta

    from sitegate.cloud.billing.periods import local_midnight

    def read(m: StayMeter, arrival: date, departure: date) -> tuple[Any, Any]:
        out = []
        for day, before in ((arrival, True), (departure + timedelta(days=1), True)):
            at = datetime.fromtimestamp(local_midnight(day, model.tz), UTC)
            got = store.gateway_value(conn, m.gateway or "", m.meter_id or unit_id,
                                      m.quantity, at, before)
            if got is None:
                out.append(None)
                continue
            ts, value, unit = got
            value = value / 1000 if unit == "Wh" else value
            out.append(rd.StayReading(unit_id, m.id, ts, value, False, "gateway",
                                      m.gateway or ""))
        start, end = out
        if start is not None and end is not None and end.ts <= start.ts:
            end = None
        return start, end

    return read


def _unit_readings(conn: Connection, site_id: str,
                   units: list[str]) -> dict[str, dict[str, list[rd.StayReading]]]:
    """The units' readings by unit and meter, in time order: one query."""
    out: dict[str, dict[str, list[rd.StayReading]]] = {u: {} for u in units}
    for row in store.unit_readings(conn, site_id, units):
        out[row["unit_id"]].setdefault(row["meter"], []).append(_reading(row))
    return out


def _store_settlement(conn: Connection, model: SiteModel, s: Settlement, day: date,
                      issue: bool) -> dict[str, Any]:
    doc = s.document
    num = billing_store.next_number(conn, model.site.id)
    billing_store.insert_invoice(
        conn, site_id=model.site.id, number=num, kind="invoice",
        account_id=doc["account"]["id"], period=doc["period"], state="draft",
        reminder_level=0, total_due=doc["total_due"], document=canonical(doc), inputs="{}")
    r = s.reservation.model_copy(update={"status": "checked_out"})
    store.upsert_reservation(conn, model.site.id, r.id, store.now(), status="checked_out",
                             data=canonical(to_json(r)), checked_out_on=day.isoformat(),
                             first_day=s.first.isoformat(), last_day=s.last.isoformat(),
                             invoice_number=num)
    state = "draft"
    if issue:
        state = ledger.issue(conn, model, num, day, datetime.now(UTC))["state"]
    return {"reservation": r.id, "unit": r.unit, "guest": doc["account"]["name"],
            "invoice": num, "state": state, "from": s.first.isoformat(),
            "to": s.last.isoformat(), "gross_total": doc["gross_total"],
            "deposit": doc["deposit"], "total_due": doc["total_due"],
            "refund": doc["refund"]}


def checkout(engine: Engine, site: str | None, rid: str, day: date,
             issue: bool = False) -> dict[str, Any]:
    """Check one reservation out on ``day`` with its settlement (a draft invoice, or
    issued with ``issue``); refused, with the reason, when it cannot be settled."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        su = load_setup(conn, model)
        typed, _ = _reservations(conn, model.site.id)
        r = typed.get(rid)
        if r is None:
            raise NotFound(f"no reservation {rid!r} at site {model.site.id!r}")
        todo, skips = select(su, typed.values(), day)
        if r not in todo:
            why = next((s for s in skips if s.reservation == rid
                        or (s.unit == r.unit and s.reservation in (None, r.parent))), None)
            raise StayError(f"reservation {rid} is not settled: "
                            + (why.detail if why else f"it is {r.status}, not the unit's "
                               f"checked-in reservation on {day}"))
        try:
            unit = r.unit or ""
            s = settle(model, su, r, day, _unit_readings(conn, model.site.id, [unit])[unit],
                       _gateway(conn, model, unit))
        except Skipped as exc:
            raise StayError(f"reservation {rid} is not settled: {exc.skip.detail}") from None
        return _store_settlement(conn, model, s, day, issue)


def run(engine: Engine, site: str | None, day: date, unit_type: str | None = None,
        issue: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """The check-out settlement run over every unit (of a type): settles each checked-in
    reservation of an eligible category, lists every unit skipped and why."""
    with engine.begin() as conn:
        model = load_site_model(conn, site)
        su = load_setup(conn, model)
        if unit_type is not None and unit_type not in {t.id for t in su.unit_types}:
            raise NotFound(f"no unit type {unit_type!r}")
        typed, _ = _reservations(conn, model.site.id)
        todo, skips = select(su, typed.values(), day, unit_type)
        settled: list[dict[str, Any]] = []
        values = _unit_readings(conn, model.site.id, sorted({r.unit or "" for r in todo}))
        for r in todo:
            try:
                s = settle(model, su, r, day, values[r.unit or ""],
                           _gateway(conn, model, r.unit or ""))
            except Skipped as exc:
                skips.append(exc.skip)
                continue
            if dry_run:
                d = s.document
                settled.append({"reservation": r.id, "unit": r.unit, "invoice": None,
                                "guest": d["account"]["name"], "from": s.first.isoformat(),
                                "to": s.last.isoformat(), "gross_total": d["gross_total"],
                                "deposit": d["deposit"], "total_due": d["total_due"],
                                "refund": d["refund"], "state": "dry-run"})
            else:
                settled.append(_store_settlement(conn, model, s, day, issue))
        if dry_run:
            conn.rollback()
    order = {u.id: i for i, u in enumerate(su.units)}
    skips.sort(key=lambda s: order.get(s.unit, 0))
    return {"site": model.site.id, "date": day.isoformat(), "unit_type": unit_type,
            "settled": settled, "skipped": [s.to_json() for s in skips]}


def _invoice_of(conn: Connection, model: SiteModel, rid: str) -> int:
    _, rows = _reservations(conn, model.site.id)
    if rid not in rows:
        raise NotFound(f"no reservation {rid!r} at site {model.site.id!r}")
    num = rows[rid]["invoice_number"]
    if num is None:
        raise StayError(f"reservation {rid} has no settlement yet: check it out first")
    return num


def document_pdf(engine: Engine, site: str | None, rid: str) -> tuple[int, bytes]:
    """The guest's settlement document: the invoice PDF with its QR-bill."""
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        num = _invoice_of(conn, model, rid)
        return num, invoice_pdf(ledger.view(conn, ledger.get_row(conn, model.site.id, num)),
                                model)


def explain(engine: Engine, site: str | None, rid: str) -> dict[str, Any]:
    """The settlement with, per line, the readings it came from."""
    from sitegate.cloud.stays.explain import explain as explain_doc

    with engine.connect() as conn:
        model = load_site_model(conn, site)
        num = _invoice_of(conn, model, rid)
        return explain_doc(ledger.view(conn, ledger.get_row(conn, model.site.id, num)))


