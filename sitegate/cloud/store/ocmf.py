"""Queries of the signed meter values part: pinned charger keys, a session's report."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, and_, delete, insert, select

from sitegate.cloud.store import tables
from sitegate.cloud.store.tables_ocmf import ocmf_keys

Pins = dict[tuple[str, str], str]  # (gateway, charge point) -> key (hex DER)


def pinned(conn: Connection, gateways: list[str]) -> Pins:
    k = ocmf_keys.c
    q = select(k.gateway_id, k.charge_point, k.public_key).where(k.gateway_id.in_(gateways))
    return {(gw, cp): key for gw, cp, key in conn.execute(q)}


def pin(conn: Connection, gateway: str, charge_point: str, key_hex: str, fingerprint: str,
        session_id: str | None) -> None:
    """Pin (or, confirmed by an operator, replace) the key of a charger."""
    k = ocmf_keys.c
    conn.execute(delete(ocmf_keys).where(and_(k.gateway_id == gateway,
                                              k.charge_point == charge_point)))
    conn.execute(insert(ocmf_keys).values(
        gateway_id=gateway, charge_point=charge_point, public_key=key_hex,
        fingerprint=fingerprint, first_session=session_id, pinned_at=datetime.now(UTC)))


def all_pins(conn: Connection) -> list[dict]:
    k = ocmf_keys.c
    q = select(k.gateway_id, k.charge_point, k.fingerprint, k.first_session, k.pinned_at,
               k.public_key).order_by(k.gateway_id, k.charge_point)
    return [dict(r._mapping) for r in conn.execute(q)]


def session_payload(conn: Connection, gateway: str, session_id: str) -> str | None:
    """The current report of one session, as stored (signed values byte-exact inside)."""
    s = tables.session_latest.c
    return conn.execute(select(s.payload).where(and_(
        s.gateway_id == gateway, s.session_id == session_id))).scalar()
