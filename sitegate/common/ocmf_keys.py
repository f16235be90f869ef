"""Charger public keys as OCMF and OCPP carry them (hex or base64 of the DER
SubjectPublicKeyInfo): decoded, compared and pinned in one canonical form.

Kept apart from ``ocmf`` so the site-file check can read a key without loading pyocmf.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

# A DER key of the largest OCMF curve is ~120 bytes: as base64 or hex < 300 characters.
KEY_MAX_CHARS = 1024


class OcmfError(ValueError):
    """Signed data or a key that is not what OCMF says; the text says why."""


def key_der(key: str) -> bytes:
    """A public key's DER bytes from hex or base64 text (as OCMF and OCPP carry keys)."""
    text = "".join(key.split())
    if len(text) > KEY_MAX_CHARS:
        raise OcmfError(f"public key longer than {KEY_MAX_CHARS} characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise OcmfError("public key is neither hex nor base64") from None


def key_hex(key: str) -> str:
    """The canonical form a key is pinned and compared in: upper-case hex of its DER."""
    return key_der(key).hex().upper()


def fingerprint(key: str) -> str:
    return hashlib.sha256(key_der(key)).hexdigest()[:16]


def same_key(a: str, b: str) -> bool:
    try:
        return key_der(a) == key_der(b)
    except OcmfError:
        return False
