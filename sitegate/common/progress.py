"""Progress of a long job (a bus scan, a billing run) on stderr, so stdout stays the
result: a bar redrawn in place on a terminal, plain lines (every 10 %) in a log or a pipe.
Findings are printed as they come, above the bar, and stay."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, what: str, stream: TextIO | None = None,
                 tty: bool | None = None) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._shown = -1  # last tenth printed as a plain line
        self._bar = ""

    def update(self, done: float, total: float, note: str = "") -> None:
        share = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
        if self.tty:
            filled = int(share * 30)
            self._bar = (f"\r{self.what} [{'#' * filled}{'.' * (30 - filled)}] "
                         f"{share:4.0%} {note}")[:120]
            self.stream.write(self._bar + "\033[K")
            self.stream.flush()
            return
        tenth = int(share * 10)
        if tenth > self._shown:
            self._shown = tenth
            self.stream.write(f"{self.what}: {share:.0%}" + (f" ({note})" if note else "") + "\n")
            self.stream.flush()

    def say(self, line: str, out: TextIO | None = None) -> None:
        """A line that stays (a device found), printed above the bar: on ``out`` (stdout,
        as part of the result) or else on the progress stream."""
        out = out or self.stream
        if self.tty and self._bar:
            self.stream.write("\r\033[K")
            self.stream.flush()
        out.write(line + "\n")
        out.flush()
        if self.tty and self._bar:
            self.stream.write(self._bar + "\033[K")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and self._bar:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self._bar = ""
