"""The local authorization list: badges from the config and from the cloud's ``badges`` topic.

Answers never need the cloud. Badge ids are normalized before any comparison, because
readers write the same card differently (``04:a2:3b:c1`` vs ``04A23BC1``, and some readers
send 4/7-byte UIDs with the byte order reversed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sitegate.common.sitefile_ocpp import BadgeConfig

_SEPARATORS = re.compile(r"[\s:\-.]")
_HEX = re.compile(r"^[0-9A-F]+$")


def normalize(raw: str, badge_format: str = "hex") -> str:
    """The canonical form of a badge id as written by a charger with ``badge_format``."""
    if badge_format == "as-is":
        return raw.strip()
    text = _SEPARATORS.sub("", raw.strip()).upper()
    if not _HEX.match(text):
        return raw.strip()  # not a hex UID (e.g. an ISO 15118 contract id): keep as written
    if badge_format == "hex-reversed" and len(text) in (8, 14):
        text = "".join(reversed([text[i:i + 2] for i in range(0, len(text), 2)]))
    return text


@dataclass(frozen=True, slots=True)
class Badge:
    id: str  # normalized
    status: str  # accepted | blocked | expired
    expires: datetime | None
    account: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # OCPP 1.6 AuthorizationStatus: Accepted | Blocked | Expired | Invalid
    badge: str
    account: str | None
    expires: datetime | None


class BadgeList:
    """Merged view of config badges and the cloud list; the cloud list wins on conflicts."""

    def __init__(self, configured: list[BadgeConfig]) -> None:
        self._config = {normalize(b.id): Badge(normalize(b.id), b.status, _aware(b.expires),
                                               b.account) for b in configured}
        self._cloud: dict[str, Badge] = {}
        self.version = 0

    def load_cloud(self, payload: dict[str, Any]) -> None:
        """Replace the cloud list; raises ValueError on a malformed payload (nothing changed)."""
        version = payload.get("version")
        badges = payload.get("badges")
        if not isinstance(version, int) or not isinstance(badges, list):
            raise ValueError("badge list needs 'version' (int) and 'badges' (list)")
        new: dict[str, Badge] = {}
        for b in badges:
            if not isinstance(b, dict) or not isinstance(b.get("id"), str) or not b["id"]:
                raise ValueError(f"bad badge entry {b!r}")
            status = b.get("status", "accepted")
            if status not in ("accepted", "blocked", "expired"):
                raise ValueError(f"badge {b['id']!r}: unknown status {status!r}")
            exp = b.get("expires")
            expires = _aware(datetime.fromisoformat(exp)) if exp else None
            nid = normalize(b["id"])
            new[nid] = Badge(nid, status, expires, b.get("account"))
        self._cloud = new
        self.version = version

    def all(self) -> list[Badge]:
        return list({**self._config, **self._cloud}.values())

    def decide(self, raw: str, badge_format: str = "hex", now: datetime | None = None
               ) -> Decision:
        nid = normalize(raw, badge_format)
        b = self._cloud.get(nid) or self._config.get(nid)
        if b is None:
            return Decision("Invalid", nid, None, None)
        now = now or datetime.now(UTC)
        if b.status == "blocked":
            return Decision("Blocked", nid, b.account, b.expires)
        if b.status == "expired" or (b.expires is not None and b.expires <= now):
            return Decision("Expired", nid, b.account, b.expires)
        return Decision("Accepted", nid, b.account, b.expires)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt
