"""Signed meter values (OCMF) of a charging session, checked the same way at the gateway
and again in the cloud.

Parsing and the ECDSA check are pyocmf's (it keeps the payload's original text for the
signature and applies the Transparenzsoftware's transaction rules); this module adds what
billing needs on top: which key, which records belong to the session, and whether the
signed energy is the energy billed. Pure functions over strings: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pyocmf import OCMF
from pyocmf.compliance.models import IssueSeverity
from pyocmf.enums.reading import MeterReadingReason, is_end_reason
from pyocmf.exceptions import PyOCMFError

from sitegate.common.ocmf_keys import (
    KEY_MAX_CHARS,
    OcmfError,
    fingerprint,
    key_der,
    key_hex,
    same_key,
)

# Bounds on what a charger may send (an OCMF record of one or two readings is ~0.5-1.5 KB;
# a DER public key of the largest OCMF curve ~120 bytes, as base64 or hex < 300 chars).
DOC_MAX_CHARS = 8192
DOCS_MAX = 16  # signed values kept per session
# Signed and unsigned readings come from the same meter but may be rounded differently;
# a smaller difference is no disagreement.
ENERGY_TOLERANCE_WH = Decimal(1)
# A synchronized signed reading must lie this close to the session's own start and stop.
TIME_TOLERANCE = timedelta(minutes=5)

VERIFIED, FAILED, MISSING, UNSIGNED = "verified", "failed", "missing", "unsigned"


@dataclass(frozen=True, slots=True)
class SignedDoc:
    """One signed value as the charger sent it (``data`` exactly as received)."""

    context: str  # OCPP reading context, e.g. Transaction.Begin
    data: str
    encoding: str | None = None  # 2.0.1 encodingMethod (or the 1.6 wrapper's); None: plain
    public_key: str | None = None  # the key sent along, if any


def ocmf_text(data: str) -> str:
    """The OCMF record ``OCMF|{payload}|{signature}`` in ``data``: as it is, or base64 (the
    OCPP 2.0.1 signedMeterData) or hex (some 1.6 chargers) of it. Only decoded, never
    re-encoded: the payload's characters are the ones the meter signed."""
    if len(data) > DOC_MAX_CHARS:
        raise OcmfError(f"signed data longer than {DOC_MAX_CHARS} characters")
    text = data.strip()
    if text.startswith("OCMF|"):
        return text
    for decode in (lambda s: base64.b64decode(s, validate=True), bytes.fromhex):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if raw.startswith(b"OCMF|"):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise OcmfError("decoded signed data is not UTF-8") from None
    raise OcmfError("not an OCMF record (neither plain, base64 nor hex 'OCMF|...')")


@dataclass(frozen=True, slots=True)
class SignedReading:
    """A law-relevant reading as signed: the value keeps its digits (``2935.600`` stays)."""

    tm: str
    tx: str
    value: str
    unit: str
    obis: str | None
    pagination: str | None
    status: str | None

    @property
    def wh(self) -> Decimal:
        v = Decimal(self.value)
        return v * 1000 if self.unit == "kWh" else v

    def to_dict(self) -> dict[str, Any]:
        return {"tm": self.tm, "tx": self.tx, "value": self.value, "unit": self.unit,
                "obis": self.obis, "pagination": self.pagination, "status": self.status}


@dataclass(slots=True)
class Check:
    """What the signed values of one session prove. ``status``: verified (every record
    verifies, begin and end present and consistent, signed energy = billed energy),
    failed, missing (a calibrated charger sent none), unsigned (none, none expected)."""

    status: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meter: dict[str, str | None] = field(default_factory=dict)
    start: SignedReading | None = None
    stop: SignedReading | None = None
    key_fingerprint: str | None = None

    @property
    def energy_wh(self) -> Decimal | None:
        if self.start is None or self.stop is None:
            return None
        return self.stop.wh - self.start.wh

    def to_dict(self) -> dict[str, Any]:
        e = self.energy_wh
        return {"status": self.status, "problems": self.problems[:20],
                "notes": self.notes[:20], "meter": self.meter,
                "start": self.start.to_dict() if self.start else None,
                "stop": self.stop.to_dict() if self.stop else None,
                "energy_wh": format(e, "f") if e is not None else None,
                "key_fingerprint": self.key_fingerprint}


def _parse(doc: SignedDoc) -> OCMF:
    try:
        return OCMF.from_string(ocmf_text(doc.data))
    except PyOCMFError as exc:
        raise OcmfError(str(exc).splitlines()[0][:200]) from None


def _reading(r: Any, pg: str | None) -> SignedReading:
    unit = str(r.RU.value if hasattr(r.RU, "value") else r.RU) if r.RU is not None else ""
    return SignedReading(
        tm=str(r.TM) if not hasattr(r, "model_dump") else str(r.model_dump(mode="json")["TM"]),
        tx=str(r.TX.value if hasattr(r.TX, "value") else r.TX),
        value=format(r.RV, "f") if isinstance(r.RV, Decimal) else str(r.RV), unit=unit,
        obis=str(r.RI) if r.RI is not None else None, pagination=pg,
        status=str(r.ST.value if hasattr(r.ST, "value") else r.ST) if r.ST else None)


def _hex_id(s: str | None) -> str:
    return "".join(c for c in (s or "").upper() if c.isalnum())


def verify_session(docs: list[SignedDoc], public_key: str | None, *, calibrated: bool,
                   energy_wh: Decimal | None, meter_serial: str | None = None,
                   badge: str | None = None, start: datetime | None = None,
                   stop: datetime | None = None) -> Check:
    """Check a session's signed values against ``public_key`` (configured, or pinned at
    first use) and against the session's own unsigned energy ``energy_wh``, the meter
    serial configured for the charger, its badge and its start and stop times."""
    with warnings.catch_warnings():
        # pyocmf reports spec deviations the Transparenzsoftware accepts as warnings; the
        # checks here decide, so they are not noise in the logs.
        warnings.simplefilter("ignore")
        return _verify(docs, public_key, calibrated, energy_wh, meter_serial, badge, start,
                       stop)


def _verify(docs: list[SignedDoc], public_key: str | None, calibrated: bool,
            energy_wh: Decimal | None, meter_serial: str | None, badge: str | None,
            start: datetime | None, stop: datetime | None) -> Check:
    if not docs:
        if calibrated:
            return Check(MISSING, ["no signed meter values from a calibrated charger"])
        return Check(UNSIGNED)
    check = Check(FAILED)
    if public_key is None:
        check.problems.append("no public key for this charger (configure it, or let the "
                              "charger send it once to pin it)")
    else:
        try:
            check.key_fingerprint = fingerprint(public_key)
        except OcmfError as exc:
            check.problems.append(f"public key: {exc}")
            public_key = None
    parsed: list[tuple[SignedDoc, OCMF]] = []
    seen: set[str] = set()
    for doc in docs[:DOCS_MAX]:
        if doc.data in seen:  # the same record in two placements (MeterValues and Stop)
            continue
        seen.add(doc.data)
        try:
            parsed.append((doc, _parse(doc)))
        except OcmfError as exc:
            check.problems.append(f"{doc.context}: {exc}")
    for doc, o in parsed:
        if public_key is None:
            break
        try:
            ok = o.verify_signature(key_hex(public_key))
        except PyOCMFError as exc:
            ok = False
            check.notes.append(f"{doc.context}: {str(exc).splitlines()[0][:160]}")
        if not ok:
            check.problems.append(f"{doc.context}: signature does not verify with key "
                                  f"{check.key_fingerprint}")
    _transaction(check, [o for _d, o in parsed])
    _identity(check, [o for _d, o in parsed], meter_serial, badge)
    _times(check, start, stop)
    e = check.energy_wh
    if e is not None and energy_wh is not None and abs(e - energy_wh) > ENERGY_TOLERANCE_WH:
        check.problems.append(f"signed energy {format(e, 'f')} Wh differs from the "
                              f"unsigned {format(energy_wh, 'f')} Wh")
    if not check.problems:
        check.status = VERIFIED
    return check


def _transaction(check: Check, records: list[OCMF]) -> None:
    """Exactly one law-relevant begin and one end reading across the records, checked as
    one transaction (pyocmf: serials, OBIS, units, order of values and times, pagination,
    identification level), the end record's page after the begin record's."""
    begins: list[tuple[OCMF, Any]] = []
    ends: list[tuple[OCMF, Any]] = []
    for o in records:
        for r in o.payload.RD:
            if r.TX == MeterReadingReason.BEGIN:
                begins.append((o, r))
            elif r.TX is not None and is_end_reason(r.TX):
                ends.append((o, r))
    if not begins:
        check.problems.append("no signed begin reading (TX=B)")
    if not ends:
        check.problems.append("no signed end reading (TX=E/L/R/A/P)")
    if len(begins) > 1 or len(ends) > 1:
        check.problems.append(f"{len(begins)} signed begin and {len(ends)} end readings "
                              "(one each expected)")
    if not begins or not ends:
        return
    (bo, br), (eo, er) = begins[0], ends[-1]
    check.start, check.stop = _reading(br, bo.payload.PG), _reading(er, eo.payload.PG)
    if check.start.unit not in ("kWh", "Wh") or check.stop.unit not in ("kWh", "Wh"):
        check.problems.append(f"signed readings in {check.start.unit}/{check.stop.unit}, "
                              "not kWh or Wh")
    issues = bo.check_eichrecht() if bo is eo else bo.check_eichrecht(eo)
    for issue in issues:
        text = f"{issue.code}: {issue.message}"[:200]
        if issue.severity == IssueSeverity.ERROR:
            check.problems.append(text)
        elif issue.code == "PAGINATION_INCONSISTENT":
            check.problems.append(text)  # an end record paged before its begin: replayed
        else:
            check.notes.append(text)


def _identity(check: Check, records: list[OCMF], meter_serial: str | None,
              badge: str | None) -> None:
    serials = {o.payload.MS or o.payload.GS for o in records}
    if len(serials) > 1:
        check.problems.append(f"records of different meters: {sorted(map(str, serials))}")
    first = records[0].payload if records else None
    if first is not None:
        check.meter = {"vendor": first.MV, "model": first.MM, "serial": first.MS,
                       "gateway": first.GI, "gateway_serial": first.GS}
    if meter_serial and first is not None and meter_serial not in serials:
        check.problems.append(f"signed by meter {first.MS or first.GS!r}, not the "
                              f"configured {meter_serial!r}")
    ids = {_hex_id(str(o.payload.ID)) for o in records if o.payload.ID}
    if badge and ids and _hex_id(badge) not in ids:
        # Chargers write card UIDs in their own byte order and case: noted, not failed.
        check.notes.append(f"signed identification {sorted(ids)} is not the badge "
                           f"{badge!r} as the gateway normalized it")


def _times(check: Check, start: datetime | None, stop: datetime | None) -> None:
    """A synchronized signed reading lies near the session's own start or stop: a record
    of another transaction does not."""
    for reading, at, what in ((check.start, start, "begin"), (check.stop, stop, "end")):
        if reading is None or at is None or not reading.tm.endswith(" S"):
            continue
        try:
            signed = parse_tm(reading.tm)
        except ValueError:
            check.problems.append(f"unreadable signed time {reading.tm!r}")
            continue
        if abs(signed - at) > TIME_TOLERANCE:
            check.problems.append(f"signed {what} time {reading.tm} is not the session's "
                                  f"{what} {at.isoformat()}")


def parse_tm(tm: str) -> datetime:
    """OCMF time ``2018-07-24T13:22:04,000+0200 S`` as an aware UTC datetime."""
    stamp = tm.split(" ")[0].replace(",", ".")
    return datetime.fromisoformat(stamp).astimezone(UTC)




def safe_xml(docs: list[SignedDoc], public_key: str | None, transaction_id: int = 1) -> str:
    """The session's signed records as the Transparenzsoftware (S.A.F.E.) opens them: one
    ``<value>`` per record with its reading context, the OCMF text decoded from its
    transport encoding (never re-encoded) and the public key as hex."""

    key = f'    <publicKey encoding="plain">{key_hex(public_key)}</publicKey>\n' \
        if public_key else ""
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>', "<values>"]
    seen: set[str] = set()
    for doc in docs:
        text = ocmf_text(doc.data)
        if text in seen:
            continue
        seen.add(text)
        out.append(f"  <value transactionId=\"{int(transaction_id)}\" "
                   f"context={quoteattr(doc.context)}>\n"
                   f'    <signedData format="OCMF" encoding="plain">{escape(text)}'
                   f"</signedData>\n{key}  </value>")
    out.append("</values>")
    return "\n".join(out) + "\n"


__all__ = ["DOCS_MAX", "DOC_MAX_CHARS", "FAILED", "KEY_MAX_CHARS", "MISSING", "UNSIGNED",
           "VERIFIED", "Check", "OcmfError", "SignedDoc", "SignedReading", "fingerprint",
           "key_der", "key_hex", "ocmf_text", "parse_tm", "safe_xml", "same_key",
           "verify_session"]
