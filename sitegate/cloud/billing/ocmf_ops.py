"""Signed meter values over one database, shared by the CLI and the HTTP API: a session's
records for the Transparenzsoftware, the cloud's check of them, the pinned keys."""

from __future__ import annotations

import json
from typing import Any

from sitegate.cloud.billing import calibrated
from sitegate.cloud.billing.sites import NotFound, load_site_model
from sitegate.cloud.store import ocmf as store
from sitegate.cloud.store.billing import DB as Engine
from sitegate.common import ocmf
from sitegate.common.ocmf_keys import OcmfError, fingerprint, key_hex
from sitegate.sync.protocol import SessionRecord


def _session(engine: Engine, site: str | None, gateway: str, session_id: str
             ) -> tuple[SessionRecord, str | None, dict[str, Any] | None]:
    """A session of one of the site's gateways, the key it is checked with, the check."""
    with engine.connect() as conn:
        model = load_site_model(conn, site)
        gateways = set(model.site.gateways) | {m.gateway for m in model.meters}
        if gateway not in gateways:
            raise NotFound(f"gateway {gateway!r} is not one of site {model.site.id!r}")
        payload = store.session_payload(conn, gateway, session_id)
        if payload is None:
            raise NotFound(f"no session {session_id!r} from gateway {gateway!r}")
        pins = store.pinned(conn, [gateway])
    raw = json.loads(payload)
    rec = SessionRecord.model_validate(raw)  # fields a newer gateway adds are ignored
    result = calibrated.check(gateway, rec, model, pins, [])
    cfg = calibrated.charger(model, gateway, rec.charge_point)
    key = (cfg.public_key if cfg is not None else None) \
        or pins.get((gateway, rec.charge_point)) or rec.public_key
    return rec, key, result


def export_xml(engine: Engine, site: str | None, gateway: str, session_id: str) -> str:
    """The session's signed records as the Transparenzsoftware's XML (the file a customer
    opens there), with the key the cloud checks them with."""
    rec, key, _ = _session(engine, site, gateway, session_id)
    if not rec.signed_values:
        raise NotFound(f"session {session_id!r} carries no signed meter values")
    docs = [ocmf.SignedDoc(s.context, s.data, s.encoding, s.public_key)
            for s in rec.signed_values]
    return ocmf.safe_xml(docs, key)


def check_session(engine: Engine, site: str | None, gateway: str,
                  session_id: str) -> dict[str, Any]:
    rec, _key, result = _session(engine, site, gateway, session_id)
    return {"gateway": gateway, "session": session_id, "charge_point": rec.charge_point,
            "signed_values": len(rec.signed_values), "check": result}


def keys(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [{k: (str(v) if k == "pinned_at" else v) for k, v in row.items()}
                for row in store.all_pins(conn)]


def pin(engine: Engine, gateway: str, charge_point: str, public_key: str) -> dict[str, Any]:
    """An operator confirms a charger's (new) key, e.g. after its meter was exchanged."""
    try:
        hexkey, fp = key_hex(public_key), fingerprint(public_key)
    except OcmfError as exc:
        raise ValueError(str(exc)) from None
    with engine.begin() as conn:
        store.pin(conn, gateway, charge_point, hexkey, fp, None)
    return {"gateway": gateway, "charge_point": charge_point, "fingerprint": fp}
