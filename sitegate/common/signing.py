"""Signed downlink: the cloud signs config, badge lists and commands; the gateway verifies.

Wire form (compact JSON)::

    {"v": 1, "alg": "Ed25519", "signed": "<canonical JSON text>", "sig": "<base64>"}

``signed`` is the exact text that was signed (prefixed with a domain tag, so the key signs
nothing else that could be mistaken for a downlink message). It carries the gateway id, the
kind (``config``, ``badges``, ``cmd``), the version or command id, when it was issued, when
it expires, and the message body. The verifier checks the signature over those bytes first
and only then parses them, so no canonicalisation has to agree between the two sides.
Library: ``cryptography`` (Ed25519).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENVELOPE_VERSION = 1
ALG = "Ed25519"
DOMAIN = b"sitegate-downlink-v1\n"
KIND_CONFIG = "config"
KIND_BADGES = "badges"
KIND_CMD = "cmd"
KINDS = (KIND_CONFIG, KIND_BADGES, KIND_CMD)
# Bounds checked before anything is parsed: a site file is a few KB; 1 MiB is generous.
MAX_ENVELOPE_BYTES = 1024 * 1024
# A command must expire, and not far ahead: the gateway's record of executed ids forgets an
# id once its expiry has passed, so this bounds how long (and so how big) that record is.
MAX_COMMAND_LIFETIME = timedelta(days=1)


class SignatureError(ValueError):
    """A downlink message that must not be acted on; the text says why (one line)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """What a valid signature vouches for."""

    gateway: str
    kind: str
    ref: int | str  # the version (config, badges) or the command id
    issued: datetime
    expires: datetime | None
    body: dict[str, Any]


# -- keys ------------------------------------------------------------------------------------


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file; ValueError (one line) if it is not one."""
    try:
        key = serialization.load_pem_private_key(_read_small(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file; ValueError (one line) if it is not one."""
    try:
        key = serialization.load_pem_public_key(_read_small(path))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def _read_small(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read(64 * 1024 + 1)
    if len(data) > 64 * 1024:
        raise ValueError(f"{path}: too big for a key file")
    return data


# -- sign and verify ----------------------------------------------------------------------------


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def sign(key: Ed25519PrivateKey, gateway_id: str, kind: str, ref: int | str,
         body: dict[str, Any], *, expires: datetime | None = None,
         now: datetime | None = None) -> bytes:
    """The wire form of ``body`` signed for ``gateway_id`` as ``kind`` (ref: version or id)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    signed = {"gateway": gateway_id, "kind": kind, "ref": ref,
              "issued": _iso(now or datetime.now(UTC)),
              "expires": _iso(expires) if expires is not None else None, "body": body}
    text = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)
    sig = key.sign(DOMAIN + text.encode())
    envelope = {"v": ENVELOPE_VERSION, "alg": ALG, "signed": text,
                "sig": base64.b64encode(sig).decode()}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def verify(key: Ed25519PublicKey, payload: bytes, gateway_id: str, kind: str,
           now: datetime | None = None) -> Verified:
    """The signed content of ``payload`` if it is a valid, current ``kind`` message for
    ``gateway_id``; SignatureError saying why not otherwise."""
    text, sig = _envelope(payload)
    try:
        key.verify(sig, DOMAIN + text.encode())
    except InvalidSignature:
        raise SignatureError("bad signature (not signed by this gateway's cloud key)") from None
    v = _content(text)
    if v.gateway != gateway_id:
        raise SignatureError(f"signed for gateway {v.gateway!r}, not this one ({gateway_id!r})")
    if v.kind != kind:
        raise SignatureError(f"signed as a {v.kind!r} message, received as {kind!r}")
    now = now or datetime.now(UTC)
    if v.expires is not None and now >= v.expires:
        raise SignatureError(f"expired at {_iso(v.expires)}")
    if kind == KIND_CMD:
        if v.expires is None:
            raise SignatureError("a command without an expiry is never run")
        if v.expires - now > MAX_COMMAND_LIFETIME:
            raise SignatureError(f"expires {_iso(v.expires)}, more than "
                                 f"{MAX_COMMAND_LIFETIME} ahead (clock wrong?)")
    return v


def _envelope(payload: bytes) -> tuple[str, bytes]:
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise SignatureError(f"{len(payload)} bytes, more than {MAX_ENVELOPE_BYTES}")
    try:
        env = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"unsigned: not JSON ({exc})") from None
    if not isinstance(env, dict) or "sig" not in env or "signed" not in env:
        raise SignatureError("unsigned (no signature envelope)")
    if env.get("v") != ENVELOPE_VERSION or env.get("alg") != ALG:
        raise SignatureError(f"envelope v{env.get('v')!r} alg {env.get('alg')!r} is not "
                             f"v{ENVELOPE_VERSION} {ALG}")
    text, sig = env["signed"], env["sig"]
    if not isinstance(text, str) or not isinstance(sig, str):
        raise SignatureError("signed and sig must be strings")
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("sig is not base64") from None
    if len(raw) != 64:
        raise SignatureError(f"sig has {len(raw)} bytes, not 64")
    return text, raw


def _content(text: str) -> Verified:
    # Signed by the cloud, so well formed unless the cloud has a bug: checked all the same.
    try:
        d = json.loads(text)
        gateway, kind, ref, body = d["gateway"], d["kind"], d["ref"], d["body"]
        issued = _aware(d["issued"])
        expires = _aware(d["expires"]) if d["expires"] is not None else None
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise SignatureError(f"signed content unreadable: {exc}") from None
    if not (isinstance(gateway, str) and isinstance(kind, str) and isinstance(body, dict)
            and isinstance(ref, int | str) and not isinstance(ref, bool)):
        raise SignatureError("signed content has wrong types")
    return Verified(gateway, kind, ref, issued, expires, body)


def _aware(text: Any) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} without a zone")
    return t
