"""Enrolment of gateways: one-time claim tokens bound to a site, the provisioning exchange
(claim and renew), the registry of enrolled gateways and revocation (the CRL).

A claim is refused when the token is unknown, expired, or already used by another device
(the same device retrying with the same key gets its certificate again: the answer may
have been lost), or when the gateway id is enrolled and not revoked, or bound to another
site. A renewal must present a certificate of this CA, unexpired and not revoked, for the
same id and the same key as the CSR (so only the device holding the key can renew).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError
from sqlalchemy import Engine, select, update

from sitegate.cloud.auth.ca import CA, CAError, cn_of, downlink_public
from sitegate.cloud.store import tables as t
from sitegate.common import provisioning as pv

log = structlog.get_logger(__name__)

MAX_EXPIRY = timedelta(days=30)


class EnrolmentError(Exception):
    """A refused claim, renewal or operator request; the text is safe to send back."""


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(v: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


def _key_hash(key: Any) -> str:
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# -- claim tokens (operator) ---------------------------------------------------------------------


ID_CHARS = 12  # a claim token's id: the start of its hash (names it, proves nothing)
SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True)
class NewClaimToken:
    token: str  # shown once
    id: str
    site_id: str
    expires_at: datetime


def create_claim_token(engine: Engine, ca: CA, site_id: str,
                       expires: timedelta) -> NewClaimToken:
    """A new token for ``site_id``; only its hash is stored. Shown once, never again."""
    if not SITE_RE.match(site_id):
        raise EnrolmentError(f"site {site_id[:80]!r}: letters, digits and _.:- only")
    if not timedelta(0) < expires <= MAX_EXPIRY:
        raise EnrolmentError(f"expiry must be more than 0 and at most {MAX_EXPIRY.days} days")
    pin = ca.broker_pin()  # CAError before anything is stored
    secret = base64.b32encode(secrets.token_bytes(20)).decode()
    now, token_hash = _now(), pv.secret_hash(secret)
    with engine.begin() as conn:
        conn.execute(t.claim_tokens.insert().values(
            token_hash=token_hash, site_id=site_id, created_at=now, expires_at=now + expires))
    return NewClaimToken(pv.make_token(secret, pin), token_hash[:ID_CHARS], site_id,
                         now + expires)


def parse_duration(text: str) -> timedelta:
    m = re.fullmatch(r"(\d{1,6})([smhd])", text.strip())
    if not m:
        raise ValueError(f"duration {text!r}: expected a number and s, m, h or d (e.g. 24h)")
    return timedelta(seconds=int(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]])


def _state(row: Any, now: datetime) -> str:
    if row["used_at"] is not None:
        return "used"
    if row["revoked_at"] is not None:
        return "revoked"
    return "expired" if _utc(row["expires_at"]) <= now else "valid"  # type: ignore[operator]


def claim_tokens(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Claim tokens, newest first, with their state (valid, used, expired, revoked); never
    the token."""
    now = _now()
    with engine.connect() as conn:
        rows = conn.execute(select(t.claim_tokens).order_by(
            t.claim_tokens.c.created_at.desc()).limit(limit)).mappings().all()
    return [{"id": r["token_hash"][:ID_CHARS], "site_id": r["site_id"],
             "state": _state(r, now), "created_at": _utc(r["created_at"]),
             "expires_at": _utc(r["expires_at"]), "used_at": _utc(r["used_at"]),
             "used_by": r["used_by"], "revoked_at": _utc(r["revoked_at"])} for r in rows]


def revoke_claim_token(engine: Engine, token_id: str) -> dict[str, Any]:
    """Withdraw an unused claim token (by id) so that nobody can enrol with it."""
    if not re.fullmatch(f"[0-9a-f]{{{ID_CHARS}}}", token_id):
        raise EnrolmentError(f"claim token id {token_id[:40]!r}: {ID_CHARS} hex digits, as "
                             "listed")
    c = t.claim_tokens.c
    with engine.begin() as conn:
        row = conn.execute(select(t.claim_tokens).where(
            c.token_hash.startswith(token_id, autoescape=True))).mappings().first()
        if row is None:
            raise LookupError(f"no claim token {token_id}")
        if row["used_at"] is not None:
            raise EnrolmentError(f"claim token {token_id} was used by {row['used_by']}: "
                                 "revoke that gateway instead")
        if row["revoked_at"] is None:
            conn.execute(update(t.claim_tokens).where(c.token_hash == row["token_hash"],
                                                      c.used_at.is_(None))
                         .values(revoked_at=_now()))
    return next(tok for tok in claim_tokens(engine, limit=1_000_000)
                if tok["id"] == token_id)


# -- the provisioning exchange (served by ingest) ----------------------------------------------


class Provisioner:
    """Answers provisioning requests: ``handle(topic, payload)`` -> messages to publish."""

    def __init__(self, engine: Engine, keys: Path) -> None:
        self.engine = engine
        self.keys = keys
        self.ca = CA.open(keys)
        self.downlink_pub = downlink_public(keys)

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        try:
            nonce = pv.nonce_of(topic)
        except pv.ProvisioningError as exc:
            log.warning("enrol.bad_topic", error=str(exc))
            return []
        try:
            resp = self._answer(payload)
        except EnrolmentError as exc:
            log.warning("enrol.refused", reason=str(exc))
            resp = pv.Response(ok=False, error=str(exc)[:500])
        return [Outgoing(pv.response_topic(nonce), resp.model_dump_json().encode())]

    def _answer(self, payload: bytes) -> pv.Response:
        if len(payload) > pv.MAX_REQUEST_BYTES:
            raise EnrolmentError(f"request larger than {pv.MAX_REQUEST_BYTES} bytes")
        try:
            req = pv.Request.model_validate_json(payload)
            csr = x509.load_pem_x509_csr(req.csr.encode())
        except (ValidationError, ValueError) as exc:
            raise EnrolmentError(f"malformed request: {str(exc)[:200]}") from None
        if req.gateway_id in pv.RESERVED_IDS:
            raise EnrolmentError(f"gateway id {req.gateway_id!r} is reserved")
        try:
            cert = self.ca.sign_client(csr, req.gateway_id)
        except CAError as exc:
            raise EnrolmentError(str(exc)) from None
        if req.kind == "claim":
            self._claim(req, csr, cert)
        else:
            self._renew(req, csr, cert)
        log.info("enrol.issued", gateway=req.gateway_id, kind=req.kind,
                 serial=cert.serial_number, not_after=cert.not_valid_after_utc.isoformat())
        return pv.Response(ok=True, cert=cert.public_bytes(serialization.Encoding.PEM).decode(),
                           ca=self.ca.pem, downlink_pub=self.downlink_pub)

    def _claim(self, req: pv.Request, csr: x509.CertificateSigningRequest,
               cert: x509.Certificate) -> None:
        if not req.token or not pv.SECRET_RE.match(req.token):
            raise EnrolmentError("claim without a valid token")
        now, key = _now(), _key_hash(csr.public_key())
        with self.engine.begin() as conn:
            tok = conn.execute(select(t.claim_tokens).where(
                t.claim_tokens.c.token_hash == pv.secret_hash(req.token))).mappings().first()
            if tok is None:
                raise EnrolmentError("unknown claim token")
            if tok["used_at"] is not None and (tok["used_by"], tok["used_key"]) != (
                    req.gateway_id, key):
                raise EnrolmentError("claim token already used")
            if tok["revoked_at"] is not None:
                raise EnrolmentError("claim token revoked")
            if _utc(tok["expires_at"]) <= now:  # type: ignore[operator]
                raise EnrolmentError("claim token expired")
            gw = conn.execute(select(t.gateway_identities).where(
                t.gateway_identities.c.gateway_id == req.gateway_id)).mappings().first()
            retry = tok["used_at"] is not None
            if gw is not None and not retry:
                if gw["site_id"] != tok["site_id"]:
                    raise EnrolmentError(f"gateway {req.gateway_id} belongs to another site")
                if gw["revoked_at"] is None:
                    raise EnrolmentError(f"gateway {req.gateway_id} is enrolled: revoke it "
                                         "first to enrol a replacement")
            # Conditional: two claims racing with one token, only one wins.
            won = conn.execute(update(t.claim_tokens).where(
                t.claim_tokens.c.token_hash == tok["token_hash"],
                (t.claim_tokens.c.used_at.is_(None)) | (t.claim_tokens.c.used_key == key),
                t.claim_tokens.c.revoked_at.is_(None),
            ).values(used_at=now, used_by=req.gateway_id, used_key=key)).rowcount
            if won != 1:
                raise EnrolmentError("claim token already used")
            if gw is None:
                conn.execute(t.gateway_identities.insert().values(
                    gateway_id=req.gateway_id, site_id=tok["site_id"], enrolled_at=now))
            elif not retry:
                conn.execute(update(t.gateway_identities).where(
                    t.gateway_identities.c.gateway_id == req.gateway_id
                ).values(enrolled_at=now, revoked_at=None))
            self._record(conn, req.gateway_id, cert, now)

    def _renew(self, req: pv.Request, csr: x509.CertificateSigningRequest,
               cert: x509.Certificate) -> None:
        try:
            current = x509.load_pem_x509_certificate((req.cert or "").encode())
        except ValueError:
            raise EnrolmentError("renewal without a valid current certificate") from None
        now = _now()
        if not self.ca.issued_here(current) or cn_of(current) != req.gateway_id:
            raise EnrolmentError("current certificate not issued to this gateway here")
        if current.not_valid_after_utc <= now:
            raise EnrolmentError("current certificate expired: enrol with a new claim token")
        if current.public_key() != csr.public_key():
            raise EnrolmentError("renewal must keep the device key")
        with self.engine.begin() as conn:
            row = conn.execute(select(t.gateway_certs.c.revoked_at, t.gateway_identities.c
                                      .revoked_at.label("gw_revoked")).join(
                t.gateway_identities,
                t.gateway_identities.c.gateway_id == t.gateway_certs.c.gateway_id).where(
                t.gateway_certs.c.serial == str(current.serial_number),
                t.gateway_certs.c.gateway_id == req.gateway_id)).first()
            if row is None or row.revoked_at is not None or row.gw_revoked is not None:
                raise EnrolmentError("current certificate is revoked or unknown")
            self._record(conn, req.gateway_id, cert, now)

    @staticmethod
    def _record(conn: Any, gateway_id: str, cert: x509.Certificate, now: datetime) -> None:
        conn.execute(t.gateway_certs.insert().values(
            serial=str(cert.serial_number), gateway_id=gateway_id, issued_at=now,
            not_after=cert.not_valid_after_utc))


# -- registry and revocation (operator) ---------------------------------------------------------


def identities(engine: Engine) -> dict[str, dict[str, Any]]:
    """Enrolled gateways by id: site, enrolled/revoked at, newest certificate's expiry."""
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for g in conn.execute(select(t.gateway_identities)).mappings():
            out[g["gateway_id"]] = {"site_id": g["site_id"],
                                    "enrolled_at": _utc(g["enrolled_at"]),
                                    "revoked_at": _utc(g["revoked_at"]), "cert_not_after": None}
        for c in conn.execute(select(t.gateway_certs.c.gateway_id, t.gateway_certs.c.not_after)):
            g = out.get(c.gateway_id)
            if g is not None and (g["cert_not_after"] is None
                                  or _utc(c.not_after) > g["cert_not_after"]):
                g["cert_not_after"] = _utc(c.not_after)
    return out


def revoke(engine: Engine, ca: CA, gateway_id: str, crl_copies: list[Path]) -> int:
    """Revoke the gateway and every certificate it was issued; rewrite the CRL (in the key
    directory and each copy). Returns how many certificates were revoked now."""
    now = _now()
    with engine.begin() as conn:
        n = conn.execute(update(t.gateway_identities).where(
            t.gateway_identities.c.gateway_id == gateway_id).values(revoked_at=now)).rowcount
        if n != 1:
            raise EnrolmentError(f"no enrolled gateway {gateway_id!r}")
        certs = conn.execute(update(t.gateway_certs).where(
            t.gateway_certs.c.gateway_id == gateway_id,
            t.gateway_certs.c.revoked_at.is_(None)).values(revoked_at=now)).rowcount
    write_crl(engine, ca, crl_copies)
    return certs


def write_crl(engine: Engine, ca: CA, copies: list[Path]) -> bytes:
    """The CRL of every revoked certificate, to ``crl.pem`` in the key directory and copies."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.gateway_certs.c.serial, t.gateway_certs.c.revoked_at)
                            .where(t.gateway_certs.c.revoked_at.is_not(None))).all()
    pem = ca.crl([(int(r.serial), _utc(r.revoked_at)) for r in rows])  # type: ignore[misc]
    for path in [ca.dir / "crl.pem", *copies]:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(pem)
        tmp.replace(path)
    return pem
