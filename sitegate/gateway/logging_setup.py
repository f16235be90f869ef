"""structlog setup: JSON lines under systemd (journald) or when piped, readable on a terminal."""

from __future__ import annotations

import json as json_mod
import logging
import os
import sys
from pathlib import Path
from typing import Any

import structlog

LOG_FILE_MAX = 10 * 1024 * 1024  # bytes; then it becomes <name>.1 (one kept)


class _Tee:
    """A structlog processor writing each event as a JSON line to a file too: the daemon's
    own log when no journal keeps it (``sitegate logs`` reads it). Rotated at
    ``LOG_FILE_MAX``; a write that fails never stops the logging."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def __call__(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json_mod.dumps(event, default=str) + "\n")
            self._file.flush()
            if self._file.tell() > LOG_FILE_MAX:
                self._file.close()
                self._file = None
                self.path.replace(self.path.with_name(self.path.name + ".1"))
        except (OSError, ValueError):
            self._file = None
        return event


def configure(level: str = "info", json: bool | None = None,
              log_file: Path | None = None) -> None:
    if json is None:
        json = bool(os.environ.get("JOURNAL_STREAM")) or not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    tee: list[structlog.typing.Processor] = [_Tee(log_file)] if log_file is not None else []
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    # pymodbus logs every frame at debug level; its warnings still come through.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            *tee,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
