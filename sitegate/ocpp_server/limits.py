"""What a charger (or anyone reaching the OCPP port) may cost us: identities checked at the
handshake, capped connections, and logs that say what was refused once per interval, not
once per attempt (a flood must not become a log flood)."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any

from websockets.protocol import State

# OCPP 2.0.1 identifierString (the charging station identity in the URL): a-z A-Z 0-9 and
# * - _ = : + | @ . ; the security whitepaper bounds it at 48 characters. No "/" and no
# ".." (it names files and topics downstream), no control or non-ASCII characters.
IDENTITY_MAX = 48
_IDENTITY_RE = re.compile(rf"[A-Za-z0-9*\-_=:+|@.]{{1,{IDENTITY_MAX}}}")


def valid_identity(cp_id: str) -> bool:
    return _IDENTITY_RE.fullmatch(cp_id) is not None and ".." not in cp_id


class Throttle:
    """Counts events by key; ``due(key)`` is the number seen since the last report when a
    report is due (the first at once, then at most one per ``interval`` seconds), else 0."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._counts: Counter[str] = Counter()
        self._last: dict[str, float] = {}

    def due(self, key: str) -> int:
        self._counts[key] += 1
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return 0
        self._last[key] = now
        return self._counts.pop(key)


class Admission:
    """Live connections by peer address; decides at the handshake whether one more fits.

    Listed chargers are bounded by the site file (one link per id) and only count towards
    ``max_total``; unknown (pending) ones are capped in number and per address, so a flood
    of made-up ids never crowds out a listed charger or the daemon's file descriptors."""

    def __init__(self, max_total: int, max_pending: int, max_per_address: int) -> None:
        self.max_total, self.max_pending = max_total, max_pending
        self.max_per_address = max_per_address
        self._live: dict[Any, tuple[str, bool]] = {}  # connection -> (address, known)

    def _prune(self) -> None:
        for conn in [c for c in self._live if c.state is State.CLOSED]:
            del self._live[conn]

    def refuse(self, conn: Any, address: str, known: bool) -> str | None:
        """Why ``conn`` may not open (a short reason), or None after registering it."""
        self._prune()
        if len(self._live) >= self.max_total:
            return "total"
        if not known:
            pending = [a for a, k in self._live.values() if not k]
            if len(pending) >= self.max_pending:
                return "pending"
            if pending.count(address) >= self.max_per_address:
                return "per_address"
        self._live[conn] = (address, known)
        return None

    def counts(self) -> dict[str, int]:
        self._prune()
        pending = sum(1 for _, k in self._live.values() if not k)
        return {"connections": len(self._live), "pending": pending}


class QuietLibraryLog(logging.Filter):
    """For the ``ocpp`` library's logger: one line per message kind and interval, without
    the traceback it attaches to every malformed or refused call (a hostile charger would
    otherwise write a traceback per frame)."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.throttle = Throttle(interval)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        n = self.throttle.due(str(record.msg)[:60])
        if not n:
            return False
        text = record.getMessage()
        record.msg = text[:300] + (f" ({n} like it since the last)" if n > 1 else "")
        record.args, record.exc_info, record.exc_text = None, None, None
        return True
