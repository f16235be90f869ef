"""Sessions of calibrated chargers: their signed values checked again in the cloud (the
gateway's check is kept beside, never trusted), with the key the site model names, else
the one pinned at the charger's first signed session. Pure: pins come in and go out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sitegate.cloud.billing.sitemodel import Charger, SiteModel
from sitegate.common import ocmf
from sitegate.common.ocmf_keys import OcmfError, fingerprint, key_hex, same_key
from sitegate.sync.protocol import SessionRecord

Pins = dict[tuple[str, str], str]  # (gateway, charge point) -> key (hex DER)


@dataclass(frozen=True, slots=True)
class NewPin:
    gateway: str
    charge_point: str
    key_hex: str
    fingerprint: str
    session_id: str


def charger(model: SiteModel, gateway: str, cp: str) -> Charger | None:
    for c in model.chargers:
        if c.id == cp and c.gateway in (None, gateway):
            return c
    return None


def _sent_keys(rec: SessionRecord) -> list[str]:
    keys = [rec.public_key] if rec.public_key else []
    return keys + [s.public_key for s in rec.signed_values if s.public_key]


def check(gateway: str, rec: SessionRecord, model: SiteModel, pins: Pins,
          new_pins: list[NewPin]) -> dict[str, Any] | None:
    """The cloud's check of a completed session (``common.ocmf.Check`` as a dict, with
    the gateway's own verdict beside it), or None for a charger that signs nothing and
    is not calibrated. A key pinned now is appended to ``new_pins`` (and to ``pins``)."""
    cfg = charger(model, gateway, rec.charge_point)
    calibrated = rec.calibrated or (cfg is not None and cfg.calibrated)
    if not rec.signed_values and not calibrated:
        return None
    problems: list[str] = []
    key = cfg.public_key if cfg is not None else None
    sent = _sent_keys(rec)
    where = (gateway, rec.charge_point)
    if key is None and where in pins:
        key = pins[where]
        for k in sent:
            if not same_key(key, k):
                problems.append(
                    f"the charger's key {_fp(k)} is not the key pinned for it "
                    f"{_fp(key)}: a new meter? confirm with 'sitegate-cloud ocmf pin'")
                break
    elif key is None and sent:
        try:
            pin = NewPin(gateway, rec.charge_point, key_hex(sent[0]), fingerprint(sent[0]),
                         rec.session_id)
        except OcmfError as exc:
            problems.append(f"unreadable public key: {exc}")
        else:
            new_pins.append(pin)
            pins[where] = key = pin.key_hex
    energy = rec.energy_wh
    if energy is None and rec.meter_stop_wh is not None:
        energy = rec.meter_stop_wh - rec.meter_start_wh
    result = ocmf.verify_session(
        [ocmf.SignedDoc(s.context, s.data, s.encoding, s.public_key)
         for s in rec.signed_values], key, calibrated=calibrated, energy_wh=energy,
        meter_serial=cfg.meter_serial if cfg is not None else None, badge=rec.badge,
        start=rec.start, stop=rec.stop)
    if problems:
        result.problems[:0] = problems
        if result.status == ocmf.VERIFIED:
            result.status = ocmf.FAILED
    out = result.to_dict()
    # what the customer gets on the invoice to check it: the records (decoded from their
    # transport encoding, never re-encoded) and the key they were checked with
    out["records"] = _records(rec)
    out["public_key"] = _hex_or_none(key)
    out["gateway_status"] = (rec.ocmf or {}).get("status")
    if out["gateway_status"] not in (None, out["status"]):
        out["notes"].append(f"the gateway found {out['gateway_status']}, the cloud "
                            f"{out['status']}")
    return out


def _records(rec: SessionRecord) -> list[str]:
    out: list[str] = []
    for s in rec.signed_values:
        try:
            text = ocmf.ocmf_text(s.data)
        except OcmfError:
            continue
        if text not in out:
            out.append(text)
    return out


def _hex_or_none(key: str | None) -> str | None:
    try:
        return key_hex(key) if key else None
    except OcmfError:
        return None


def _fp(key: str) -> str:
    try:
        return fingerprint(key)
    except OcmfError:
        return "(unreadable)"
