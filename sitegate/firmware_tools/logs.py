"""``sitegate logs``: the daemon's structured log, filtered by meter, bus or charger.

Under systemd the daemon logs JSON lines to the journal (``journalctl -o json`` gives each
with its time); without systemd it also writes them to ``<state dir>/log/sitegate.log``
(``logging_setup``). Either way a line is one JSON object from structlog: ``event``,
``level``, ``timestamp`` and the fields the code logged (``meter``, ``bus``,
``charge_point``...). Reading is bounded: at most ``MAX_SCAN_BYTES`` of log are looked at,
the newest ``limit`` matching lines are kept.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

JOURNAL_CMD_ENV = "SITEGATE_JOURNALCTL"  # another journalctl (a wrapper, a remote one)
UNIT = "sitegate"
LOG_NAME = "log/sitegate.log"
MAX_SCAN_BYTES = 64 * 1024 * 1024
MAX_LINE = 64 * 1024
MAX_LIMIT = 5000
FIELDS = {"meter": ("meter", "meter_id"), "bus": ("bus",),
          "charger": ("charge_point", "charger", "cp_id")}


class LogsError(Exception):
    """No log to read (one line: where it looked and what to do)."""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``90s``, ``30m``, ``1h``, ``2d`` ago, or an ISO time."""
    now = now or datetime.now(UTC)
    m = re.fullmatch(r"\s*(\d{1,6})\s*([smhd])\s*", text)
    if m:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now - timedelta(seconds=int(m.group(1)) * seconds)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: like 90s, 30m, 1h, 2d or an ISO time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filter:
    since: datetime
    meter: str | None = None
    bus: str | None = None
    charger: str | None = None

    def wants(self, entry: dict[str, Any]) -> bool:
        for name, keys in FIELDS.items():
            want = getattr(self, name)
            if want is not None and not any(str(entry.get(k)) == want for k in keys):
                return False
        return True


def log_file(state: Path) -> Path:
    return state / LOG_NAME


def under_systemd() -> bool:
    return Path("/run/systemd/system").is_dir() or bool(os.environ.get(JOURNAL_CMD_ENV))


def read(flt: Filter, state: Path, limit: int = 200, source: str = "auto"
         ) -> dict[str, Any]:
    """The newest ``limit`` matching entries, oldest first, and where they came from."""
    limit = max(1, min(limit, MAX_LIMIT))
    if source == "auto":
        source = "journal" if under_systemd() else "file"
    if source == "journal":
        entries, where = _journal(flt), "journal (unit sitegate)"
    else:
        path = log_file(state)
        if not path.exists():
            raise LogsError(f"no log file at {path}: the daemon writes it when it runs without "
                            "systemd (under systemd: `sitegate logs --journal`)")
        entries, where = _file(path, flt), str(path)
    kept: deque[dict[str, Any]] = deque(maxlen=limit)
    matched = 0
    for e in entries:
        if flt.wants(e):
            matched += 1
            kept.append(e)
    return {"source": where, "since": flt.since.isoformat(), "matched": matched,
            "shown": len(kept), "entries": list(kept)}


def _time_of(entry: dict[str, Any]) -> datetime | None:
    ts = entry.get("timestamp")
    if not isinstance(ts, str):
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _file(path: Path, flt: Filter) -> Iterator[dict[str, Any]]:
    """Entries of the log file (and its rotated predecessor) since ``flt.since``."""
    budget = MAX_SCAN_BYTES
    for p in (path.with_name(path.name + ".1"), path):
        if not p.exists():
            continue
        with p.open("rb") as f:
            size = p.stat().st_size
            if size > budget:  # only the newest part of a file larger than we read
                f.seek(size - budget)
                f.readline()
            for raw in f:
                budget -= len(raw)
                entry = _entry(raw)
                if entry is None:
                    continue
                t = _time_of(entry)
                if t is not None and t < flt.since:
                    continue
                yield entry


def _entry(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > MAX_LINE:
        return None
    try:
        e = json.loads(raw)
    except ValueError:
        return None
    return e if isinstance(e, dict) else None


def _journal(flt: Filter) -> Iterator[dict[str, Any]]:
    cmd = shlex.split(os.environ.get(JOURNAL_CMD_ENV) or "journalctl")
    args = [*cmd, "-u", UNIT, "-o", "json", "--no-pager",
            "--since", flt.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")]
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise LogsError(f"cannot run {cmd[0]}: {exc.strerror}; without systemd the daemon's "
                        "log is a file: `sitegate logs --file`") from exc
    assert proc.stdout is not None
    read = 0
    try:
        for raw in proc.stdout:
            read += len(raw)
            if read > MAX_SCAN_BYTES:
                break
            yield from _from_journal(raw)
    finally:
        proc.kill()
        _, err = proc.communicate()
    if proc.returncode not in (0, -9) and read == 0:
        raise LogsError(f"{cmd[0]} failed: {err[:300].decode('utf-8', 'replace').strip()}")


def _from_journal(raw: bytes) -> Iterable[dict[str, Any]]:
    """One journal record: our JSON line in MESSAGE, with the journal's time if it has none."""
    rec = _entry(raw)
    if rec is None:
        return []
    message = rec.get("MESSAGE")
    if isinstance(message, list):  # journald sends non-UTF-8 messages as byte arrays
        message = bytes(b & 0xFF for b in message if isinstance(b, int)).decode("utf-8",
                                                                                "replace")
    entry = _entry(message.encode()) if isinstance(message, str) else None
    if entry is None:
        entry = {"event": message, "level": "info"}
    if "timestamp" not in entry and str(rec.get("__REALTIME_TIMESTAMP", "")).isdigit():
        entry["timestamp"] = datetime.fromtimestamp(
            int(rec["__REALTIME_TIMESTAMP"]) / 1e6, UTC).isoformat()
    return [entry]


def render(result: dict[str, Any]) -> str:
    lines = []
    for e in result["entries"]:
        rest = " ".join(f"{k}={v}" for k, v in e.items()
                        if k not in ("timestamp", "level", "event"))
        lines.append(f"{e.get('timestamp', '?')} {str(e.get('level', '')):7s} "
                     f"{e.get('event', '')} {rest}".rstrip())
    lines.append(f"({result['shown']} of {result['matched']} matching line(s) since "
                 f"{result['since']}, from {result['source']})")
    return "\n".join(lines)
