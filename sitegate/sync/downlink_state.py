"""What the gateway remembers of the cloud's downlink across restarts, so nothing replays.

One small JSON file in the gateway's state directory (``downlink-state.json``), written
atomically (temp file, fsync, rename) at every change:

- ``commands``: executed command ids with their expiry. A command whose expiry has passed
  is refused anyway, so its id is forgotten then; commands may not expire more than
  ``signing.MAX_COMMAND_LIFETIME`` ahead, and the record holds at most ``MAX_COMMANDS``.
- ``config``: the highest desired-config version seen with a valid signature (an older,
  superseded one replayed is refused even when the newer one was rejected).
- ``badges``: the badge-list version in force (lower ones are refused).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

FILE = "downlink-state.json"
MAX_COMMANDS = 4096
MAX_BYTES = 1024 * 1024


class DownlinkState:
    def __init__(self, path: Path | None) -> None:
        """``path`` None keeps the record in memory only (a gateway without a state dir)."""
        self.path = path
        self.commands: dict[str, datetime] = {}
        self.config = 0
        self.badges = 0
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return
        if len(raw) > MAX_BYTES:
            raise ValueError(f"{path}: larger than {MAX_BYTES} bytes")
        try:
            d = json.loads(raw)
            self.config = int(d.get("config", 0))
            self.badges = int(d.get("badges", 0))
            self.commands = {str(k): datetime.fromisoformat(v)
                             for k, v in dict(d.get("commands", {})).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: unreadable downlink state: {exc}") from None

    def executed(self, cmd_id: str) -> bool:
        return cmd_id in self.commands

    def record_command(self, cmd_id: str, expires: datetime, now: datetime | None = None,
                       save: bool = True) -> None:
        """Remember ``cmd_id`` (persist it before it runs); forgets expired ids. Raises
        OverflowError when the record is full of unexpired ids (the command is not run)."""
        now = now or datetime.now(UTC)
        self.commands = {k: t for k, t in self.commands.items() if t > now}
        if len(self.commands) >= MAX_COMMANDS:
            raise OverflowError(f"{MAX_COMMANDS} unexpired commands already recorded")
        self.commands[cmd_id] = expires
        if save:
            self.save()

    def saw_config(self, version: int) -> None:
        if version > self.config:
            self.config = version
            self.save()

    def set_badges(self, version: int) -> None:
        if version != self.badges:
            self.badges = version
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        text = json.dumps({"config": self.config, "badges": self.badges,
                           "commands": {k: t.isoformat() for k, t in self.commands.items()}})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
