"""The enrolment contract, shared by the gateway and the cloud (plain data, no I/O).

An unenrolled gateway connects to the enrolment broker (a Mosquitto of its own, bridged to
the main one; TLS, no client certificate) with a random client id, the *nonce*; its ACL
lets it write only ``sitegate/v1/provision/{nonce}/request`` and read only
``.../{nonce}/response`` (Mosquitto's ``%c`` pattern), so nobody else reads its claim token
or its answer. A claim token is ``{secret}.{pin}``: the secret proves the right to enrol
(the cloud keeps only its hash), the pin is the SHA-256 (base32, 128 bits) of the broker's
certificate, so the gateway checks that it talks to the right broker before it sends the
secret.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "sitegate/v1/provision"
REQUESTS = f"{PREFIX}/+/request"  # what the cloud subscribes to
RESPONSES = f"{PREFIX}/+/response"
CLOUD_IDENTITY = "sitegate-cloud"  # CN of the cloud's own client certificate
ENROLMENT_IDENTITY = "sitegate-enrolment"  # CN of the enrolment broker's bridge
# A gateway may never be named like the cloud's identities or the provisioning subtree.
RESERVED_IDS = frozenset({CLOUD_IDENTITY, ENROLMENT_IDENTITY, "provision"})
MAX_REQUEST_BYTES = 16 * 1024
MAX_RESPONSE_BYTES = 64 * 1024
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
GATEWAY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
SECRET_RE = re.compile(r"^[A-Z2-7]{32}$")
PIN_RE = re.compile(r"^[A-Z2-7]{26}$")


class ProvisioningError(ValueError):
    """A provisioning message or token that does not follow this contract."""


def request_topic(nonce: str) -> str:
    return f"{PREFIX}/{nonce}/request"


def response_topic(nonce: str) -> str:
    return f"{PREFIX}/{nonce}/response"


def nonce_of(topic: str) -> str:
    """The nonce of a request topic; ProvisioningError if it is not one."""
    head, _, rest = topic.partition(PREFIX + "/")
    nonce, _, leaf = rest.partition("/")
    if head or leaf != "request" or not NONCE_RE.match(nonce):
        raise ProvisioningError(f"not a provisioning request topic: {topic[:120]!r}")
    return nonce


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    kind: Literal["claim", "renew"]
    gateway_id: str = Field(pattern=GATEWAY_ID_PATTERN)
    csr: str = Field(max_length=4096, description="PEM certificate signing request")
    token: str | None = Field(None, max_length=64, description="claim: the token's secret")
    cert: str | None = Field(None, max_length=8192, description="renew: the current cert")


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    ok: bool
    error: str | None = Field(None, max_length=500)
    cert: str | None = Field(None, max_length=8192)
    ca: str | None = Field(None, max_length=16384)
    downlink_pub: str | None = Field(None, max_length=2048)


def pin_of(der: bytes) -> str:
    """The pin of a certificate (DER): 128 bits of its SHA-256, base32."""
    return base64.b32encode(hashlib.sha256(der).digest()[:16]).decode().rstrip("=")


def make_token(secret: str, pin: str) -> str:
    return f"{secret}.{pin}"


def split_token(token: str) -> tuple[str, str]:
    """(secret, pin) of a claim token; ProvisioningError if it is malformed."""
    secret, _, pin = token.strip().partition(".")
    if not SECRET_RE.match(secret) or not PIN_RE.match(pin):
        raise ProvisioningError("not a claim token (expected SECRET.PIN as printed by "
                                "sitegate-cloud gateways claim-token)")
    return secret, pin


def secret_hash(secret: str) -> str:
    """What the cloud stores: a 160-bit random secret needs no slow hash."""
    return hashlib.sha256(secret.encode()).hexdigest()
