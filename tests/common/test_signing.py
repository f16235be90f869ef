"""The signed downlink envelope on its own: what verifies, and each way it does not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sitegate.common import signing

KEY = signing.generate()
PUB = KEY.public_key()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _cmd(expires: datetime | None, gateway: str = "gw-1") -> bytes:
    return signing.sign(KEY, gateway, "cmd", "c1", {"id": "c1", "name": "status"},
                        expires=expires, now=NOW)


def test_a_signed_message_verifies_with_all_it_vouches_for() -> None:
    v = signing.verify(PUB, _cmd(NOW + timedelta(minutes=5)), "gw-1", "cmd", now=NOW)
    assert (v.gateway, v.kind, v.ref, v.body["name"]) == ("gw-1", "cmd", "c1", "status")
    assert v.expires == NOW + timedelta(minutes=5) and v.issued == NOW


@pytest.mark.parametrize(("payload", "why"), [
    (b'{"v":1,"id":"c1","name":"status"}', "unsigned"),
    (b"[" * 100_000, "unsigned: not JSON"),  # deep nesting: refused, not a RecursionError
    (b"\xff\xfe", "unsigned: not JSON"),
    (b"x" * (signing.MAX_ENVELOPE_BYTES + 1), "more than"),
])
def test_not_an_envelope(payload: bytes, why: str) -> None:
    with pytest.raises(signing.SignatureError, match=why):
        signing.verify(PUB, payload, "gw-1", "cmd", now=NOW)


def test_every_signed_field_is_covered() -> None:
    env = json.loads(_cmd(NOW + timedelta(minutes=5)))
    # Re-aim the captured command at another gateway, or stretch its expiry: bad signature.
    for old, new in (('"gw-1"', '"gw-2"'), ("12:05", "23:05")):
        forged = dict(env, signed=env["signed"].replace(old, new))
        with pytest.raises(signing.SignatureError, match="bad signature"):
            signing.verify(PUB, json.dumps(forged).encode(), "gw-2", "cmd", now=NOW)


@pytest.mark.parametrize(("expires", "gateway", "kind", "why"), [
    (NOW + timedelta(minutes=5), "gw-1", "config", "signed as a 'cmd' message"),
    (NOW + timedelta(minutes=5), "gw-9", "cmd", "not this one"),
    (None, "gw-1", "cmd", "without an expiry"),
    (NOW, "gw-1", "cmd", "expired"),
    (NOW + timedelta(days=2), "gw-1", "cmd", "ahead"),
])
def test_refused(expires: datetime | None, gateway: str, kind: str, why: str) -> None:
    with pytest.raises(signing.SignatureError, match=why):
        signing.verify(PUB, _cmd(expires), gateway, kind, now=NOW)


def test_another_key_does_not_verify() -> None:
    other = signing.generate().public_key()
    with pytest.raises(signing.SignatureError, match="bad signature"):
        signing.verify(other, _cmd(NOW + timedelta(minutes=5)), "gw-1", "cmd", now=NOW)
