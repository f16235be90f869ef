"""RFID readers: key events of a keyboard-wedge reader decoded into UIDs (recorded event
tuples: evdev and /dev/uinput are not available here), the serial line protocol over a
socat pseudo-terminal pair, and UIDs normalized exactly as the OCPP badge list does."""

from __future__ import annotations

import asyncio
import os

import pytest

from sitegate.drivers.rfid.keyboard import KeyboardReader, KeyDecoder, ReaderUnavailable
from sitegate.drivers.rfid.serial_reader import MAX_LINE, LineSplitter, SerialReader
from sitegate.drivers.rfid.uid import BadRead, reader_text
from sitegate.ocpp_server.badges import normalize

# A reader typing "04A23BC1" + Enter, as evdev delivers it: (ts, type, code, value) with
# EV_MSC scan codes (type 4) and EV_SYN (type 0) between, key down (1) and up (0).
KEY = {"0": 11, "4": 5, "A": 30, "2": 3, "3": 4, "B": 48, "C": 46, "1": 2}


def typed(text: str, t0: float = 100.0, shift: bool = False) -> list[tuple[float, int, int, int]]:
    events, t = [], t0
    for ch in text:
        if shift and ch.isalpha():
            events += [(t, 1, 42, 1)]  # left shift down
        events += [(t, 4, 4, 458791), (t, 1, KEY[ch], 1), (t, 0, 0, 0),
                   (t + 0.004, 1, KEY[ch], 0), (t + 0.004, 0, 0, 0)]
        if shift and ch.isalpha():
            events += [(t + 0.004, 1, 42, 0)]
        t += 0.008
    return events + [(t, 1, 28, 1), (t, 0, 0, 0), (t + 0.004, 1, 28, 0)]


def decode(events: list[tuple[float, int, int, int]]) -> list[str]:
    d = KeyDecoder()
    return [line for e in events if (line := d.feed(*e)) is not None]


def test_key_events_to_uid() -> None:
    assert decode(typed("04A23BC1")) == ["04A23BC1"]
    assert decode(typed("04A23BC1", shift=True)) == ["04A23BC1"]  # shift is not a character
    assert decode(typed("0432") + typed("1234", t0=200)) == ["0432", "1234"]


def test_stale_half_line_is_dropped_and_long_lines_bounded() -> None:
    # Someone typed "12" at t=50 without Enter; the reader's burst at t=100 starts afresh.
    half = [e for e in typed("12", t0=50.0) if e[2] != 28]
    assert decode(half + typed("04A23BC1")) == ["04A23BC1"]
    # A stuck key: 100 characters then Enter yields nothing, and the next card reads fine.
    stuck = [(100.0 + i * 0.01, 1, 2, 1) for i in range(100)] + [(101.0, 1, 28, 1)]
    assert decode(stuck + typed("0A0B", t0=101.1)) == ["0A0B"]


def test_keyboard_reader_without_evdev_says_what_to_install() -> None:
    async def run() -> None:
        async for _ in KeyboardReader("/dev/input/event99").lines():
            pass

    try:
        import evdev  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ReaderUnavailable, match="evdev"):
            asyncio.run(run())
    else:
        with pytest.raises(ReaderUnavailable, match="event99"):
            asyncio.run(run())


def test_line_protocol_framing_and_bounds() -> None:
    s = LineSplitter()
    assert s.feed(b"\x0204A23BC1\r\n\x03") == ["04A23BC1"]
    assert s.feed(b"noise\x02") == []  # STX starts a frame: the noise before it is dropped
    assert s.feed(b"0A0B0C0D\r") == ["0A0B0C0D"]
    assert s.feed(b"12") == [] and s.feed(b"34\n") == ["1234"]  # split across reads
    assert s.feed(b"X" * (MAX_LINE + 10) + b"\r\nAB\r\n") == ["AB"]  # too long: dropped whole


def test_decimal_readers_and_normalization_as_ocpp() -> None:
    # 0x04A23BC1 = 77740993: a reader printing decimal gives the same badge as a hex one.
    assert reader_text("0077740993", "decimal") == "04A23BC1"
    assert normalize(reader_text("04:a2:3b:c1", "text")) == "04A23BC1"
    assert normalize(reader_text("c13ba204", "text"), "hex-reversed") == "04A23BC1"
    for bad, enc in (("", "text"), ("12a", "decimal"), ("A" * 41, "text"), ("\x07AB", "text")):
        with pytest.raises(BadRead):
            reader_text(bad, enc)


def test_serial_reader_over_a_pty(pty_pair: tuple[str, str]) -> None:
    reader_side, card_side = pty_pair

    async def run() -> list[str]:
        got: list[str] = []
        fd = os.open(card_side, os.O_RDWR | os.O_NOCTTY)
        try:
            opened = asyncio.Event()

            async def read() -> None:
                async for line in SerialReader(reader_side).lines(opened.set):
                    got.append(line)
                    if len(got) == 2:
                        return

            task = asyncio.create_task(read())
            await opened.wait()  # pyserial drops what came before the port was open
            os.write(fd, b"\x0204A23BC1\r\n\x03")
            os.write(fd, b"0077740993\r\n")
            await asyncio.wait_for(task, 10)
        finally:
            os.close(fd)
        return got

    assert asyncio.run(run()) == ["04A23BC1", "0077740993"]


def test_serial_reader_missing_port() -> None:
    async def run() -> None:
        async for _ in SerialReader("/dev/ttyNOPE0").lines():
            pass

    with pytest.raises(ReaderUnavailable, match="ttyNOPE0"):
        asyncio.run(run())
