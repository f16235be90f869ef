"""Shelly Gen2+ digest authentication (RFC 7616, SHA-256), both sides.

The device's user is always ``admin`` and its realm the device id. Over HTTP the challenge
is a ``WWW-Authenticate: Digest`` header and the answer the ``Authorization`` header
(``HA2 = SHA256(method:uri)``); over WebSocket the challenge is a JSON-RPC error 401 whose
message is a JSON object and the answer an ``auth`` object in each request, with
``HA2 = SHA256("dummy_method:dummy_uri")`` as the Shelly API documentation prescribes.
"""

from __future__ import annotations

import hashlib
import re
import secrets

USER = "admin"
WS_HA2_INPUT = "dummy_method:dummy_uri"
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ha1(realm: str, password: str) -> str:
    return sha256(f"{USER}:{realm}:{password}")


def response(ha1_hex: str, nonce: str, nc: int, cnonce: str, ha2_input: str) -> str:
    return sha256(f"{ha1_hex}:{nonce}:{nc}:{cnonce}:auth:{sha256(ha2_input)}")


def parse_challenge(header: str) -> dict[str, str]:
    """``Digest realm="x", nonce="y", ...`` -> {"realm": "x", "nonce": "y", ...}."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"not a digest challenge: {header[:80]!r}")
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM.finditer(rest[:2048])}


def http_authorization(challenge: dict[str, str], password: str, method: str, uri: str,
                       nc: int = 1) -> str:
    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    if challenge.get("algorithm", "SHA-256").upper() != "SHA-256":
        raise ValueError(f"unsupported digest algorithm {challenge.get('algorithm')!r}")
    cnonce = secrets.token_hex(8)
    nc_hex = f"{nc:08x}"
    resp = sha256(f"{ha1(realm, password)}:{nonce}:{nc_hex}:{cnonce}:auth:"
                  f"{sha256(f'{method}:{uri}')}")
    return (f'Digest username="{USER}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'algorithm=SHA-256, response="{resp}", qop=auth, nc={nc_hex}, cnonce="{cnonce}"')


def ws_auth(challenge: dict[str, object], password: str) -> dict[str, object]:
    """The ``auth`` object of a WebSocket RPC request, from the 401 error's challenge."""
    realm, nonce = str(challenge.get("realm", "")), challenge.get("nonce", "")
    nc = int(challenge.get("nc", 1))  # type: ignore[call-overload]
    cnonce = secrets.randbelow(10**9)
    return {"realm": realm, "username": USER, "nonce": nonce, "cnonce": cnonce,
            "response": response(ha1(realm, password), str(nonce), nc, str(cnonce),
                                 WS_HA2_INPUT),
            "algorithm": "SHA-256"}
