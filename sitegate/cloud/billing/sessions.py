"""Sessions as billing reads them: each stored report through the protocol's one session
model (``SessionRecord``), as a billable ``SessionIn`` or an issue saying why not. A
session without an energy value, or with one no charger can deliver, is never billed as 0;
a session that delivered nothing is not billed at all (its session fee included)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import ValidationError

from sitegate.cloud.billing import calibrated
from sitegate.cloud.billing.compute import SessionIn
from sitegate.cloud.billing.consumption import Issue
from sitegate.cloud.billing.sitemodel import SiteModel
from sitegate.sync.protocol import SessionRecord


def _epoch(ts: datetime) -> int:
    """Naive times are UTC by the protocol's convention."""
    return int((ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts).timestamp())


def sessions_in(rows: Iterable[tuple[str, str, int | None, str]], start: int,
                issues: list[Issue], model: SiteModel | None = None,
                pins: calibrated.Pins | None = None,
                new_pins: list[calibrated.NewPin] | None = None) -> list[SessionIn]:
    """(gateway, session id, stop epoch, payload) rows -> billable sessions; the others
    are ``unbilled_session`` issues. With ``model``, sessions of calibrated chargers
    carry the cloud's check of their signed values (``signed``)."""
    out: list[SessionIn] = []
    for gw, sid, stopped, payload in rows:
        got = session_in(gw, payload, model, pins if pins is not None else {},
                         new_pins if new_pins is not None else [])
        if isinstance(got, str):
            issues.append(Issue("unbilled_session", f"{gw}/{sid}",
                                stopped if stopped is not None else start, got))
        else:
            out.append(got)
    return out


# Above any charger's power (DC fast chargers top out near 400 kW): a session that says it
# drew more is a faulty meter value, not a bill.
MAX_SESSION_W = Decimal(400_000)
_ENERGY = {("energy_wh",), ("meter_start_wh",), ("meter_stop_wh",)}


def session_in(gateway: str, payload: str, model: SiteModel | None = None,
               pins: calibrated.Pins | None = None,
               new_pins: list[calibrated.NewPin] | None = None) -> SessionIn | str:
    """A stored session report read through the protocol's ``SessionRecord`` (fields a newer
    gateway adds are ignored), as a billable session, or the reason it is not billable."""
    try:
        raw = json.loads(payload)
        if not isinstance(raw, dict):
            return "report is not a JSON object"
        rec = SessionRecord.model_validate(raw)
    except ValidationError as exc:
        errs = exc.errors()
        if all(e["loc"][:1] in _ENERGY for e in errs) and isinstance(raw.get("session_id"), str):
            # beyond what a store can hold (the ingest refuses these too): named, not parsed
            return (f"{raw['session_id'][:64]}: implausible energy "
                    f"{str(raw.get(errs[0]['loc'][0]))[:40]} Wh ({errs[0]['msg'][:120]})")
        return f"not a session record: {str(exc).splitlines()[0][:200]}"
    except ValueError as exc:  # not JSON
        return f"not a session record: {str(exc).splitlines()[0][:200]}"
    sid = rec.session_id
    if rec.stop is None:
        return f"{sid}: completed without a stop time"
    start, stop = _epoch(rec.start), _epoch(rec.stop)
    if stop <= start:
        return f"{sid}: implausible duration (stop {rec.stop} not after start {rec.start})"
    try:
        energy = rec.energy_wh
        if energy is None and rec.meter_stop_wh is not None:
            energy = rec.meter_stop_wh - rec.meter_start_wh
        if energy is None:
            return f"{sid}: no energy value (neither energy_wh nor meter_stop_wh)"
        if not energy.is_finite() or energy < 0 or \
                energy * 3600 > MAX_SESSION_W * (stop - start):
            return (f"{sid}: implausible energy {energy} Wh in {stop - start} s "
                    f"(negative, or above {MAX_SESSION_W / 1000} kW)")
    except ArithmeticError:  # a value beyond Decimal's range
        return f"{sid}: implausible energy {rec.energy_wh} Wh"
    if energy == 0:  # plugged in (or a relay switched) and nothing drawn: no fee for nothing
        return f"{sid}: no energy delivered in {stop - start} s, not billed"
    signed = None
    if model is not None:
        signed = calibrated.check(gateway, rec, model, {} if pins is None else pins,
                                  [] if new_pins is None else new_pins)
    return SessionIn(sid, gateway, rec.charge_point, rec.connector, rec.kind, rec.badge,
                     start, stop, energy, signed)


