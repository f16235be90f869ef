"""USB RFID readers that present themselves as a keyboard ("keyboard wedge"), read through
Linux evdev and grabbed, so the UIDs they type never reach a console or a login prompt.

The reader types the UID and Enter. ``KeyDecoder`` turns key events into lines; it is pure
(tested on recorded event tuples). ``KeyboardReader`` needs the ``evdev`` package (Linux
only, optional: ``pip install 'sitegate[rfid]'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from sitegate.drivers.rfid.uid import MAX_UID

EV_KEY = 1
KEY_DOWN = 1
ENTER = {28, 96}  # KEY_ENTER, KEY_KPENTER
# Linux input-event-codes.h: the keys a reader types (digits, letters, keypad digits).
KEYS: dict[int, str] = {
    2: "1", 3: "2", 4: "3", 5: "4", 6: "5", 7: "6", 8: "7", 9: "8", 10: "9", 11: "0",
    16: "Q", 17: "W", 18: "E", 19: "R", 20: "T", 21: "Y", 22: "U", 23: "I", 24: "O", 25: "P",
    30: "A", 31: "S", 32: "D", 33: "F", 34: "G", 35: "H", 36: "J", 37: "K", 38: "L",
    44: "Z", 45: "X", 46: "C", 47: "V", 48: "B", 49: "N", 50: "M",
    71: "7", 72: "8", 73: "9", 75: "4", 76: "5", 77: "6", 79: "1", 80: "2", 81: "3", 82: "0",
}
GAP = 0.5  # seconds: a reader types a UID in one burst; a longer pause starts afresh


class KeyDecoder:
    """Key events ``(timestamp, type, code, value)`` in, typed lines out."""

    def __init__(self) -> None:
        self._chars: list[str] = []
        self._last = 0.0
        self._overflow = False

    def feed(self, ts: float, etype: int, code: int, value: int) -> str | None:
        """The line when this event is its Enter, else None."""
        if etype != EV_KEY or value != KEY_DOWN:
            return None  # key up, repeat, sync and scan-code events
        if self._chars and ts - self._last > GAP:
            self._chars, self._overflow = [], False  # a stale half line (a person typing?)
        self._last = ts
        if code in ENTER:
            line = "".join(self._chars)
            bad = self._overflow
            self._chars, self._overflow = [], False
            return None if bad or not line else line
        char = KEYS.get(code)
        if char is None:
            return None  # shift and other keys: UIDs are hex or decimal
        if len(self._chars) >= MAX_UID:
            self._overflow = True  # bounded: a stuck key never grows the line
        else:
            self._chars.append(char)
        return None


class ReaderUnavailable(Exception):
    pass


class KeyboardReader:
    def __init__(self, path: str, grab: bool = True) -> None:
        self.path = path
        self.grab = grab

    def describe(self) -> str:
        return f"keyboard {self.path}"

    async def lines(self, on_open: Callable[[], None] | None = None) -> AsyncIterator[str]:
        try:
            import evdev  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ReaderUnavailable(
                "keyboard readers need the evdev package (Linux only): "
                "pip install 'sitegate[rfid]'") from exc
        try:
            device: Any = evdev.InputDevice(self.path)
            if self.grab:
                device.grab()  # the typed UIDs go to us only, not to a console
        except OSError as exc:
            raise ReaderUnavailable(f"{self.path}: {exc.strerror or exc}"
                                    + (" (in use: is the daemon running?)"
                                       if getattr(exc, "errno", None) == 16 else "")) from exc
        if on_open is not None:
            on_open()
        decoder = KeyDecoder()
        try:
            async for ev in device.async_read_loop():
                line = decoder.feed(ev.timestamp(), ev.type, ev.code, ev.value)
                if line is not None:
                    yield line
        except OSError as exc:
            raise ReaderUnavailable(f"{self.path}: {exc.strerror or exc}") from exc
        finally:
            try:
                if self.grab:
                    device.ungrab()
            except OSError:
                pass
            device.close()
