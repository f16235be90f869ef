"""EN 13757-2 link-layer frames: build requests, cut replies out of a byte stream, check them.

Four frame kinds travel on the wire: the single character ACK (0xE5), the short frame
(10 C A CS 16), the control frame and the long frame (68 L L 68 C A CI data CS 16; a
control frame is a long frame without data). The checksum is the byte sum of C..data.
"""

from __future__ import annotations

from dataclasses import dataclass

ACK = 0xE5
START_SHORT = 0x10
START_LONG = 0x68
STOP = 0x16

# Control field values (master to slave). Bit 5 is the frame count bit (FCB), bit 4 FCV.
C_SND_NKE = 0x40
C_SND_UD = 0x53  # FCV=1, FCB=0
C_REQ_UD2 = 0x5B  # FCV=1, FCB=0; 0x7B with FCB=1
FCB_BIT = 0x20

ADDR_NETWORK = 0xFD  # the slave selected by secondary address
ADDR_BROADCAST_REPLY = 0xFE
ADDR_BROADCAST = 0xFF
MAX_PRIMARY = 250

CI_SELECT = 0x52  # select slave by secondary address
CI_DATA_SEND = 0x51  # master data to slave (used to write the primary address)
CI_APP_RESET = 0x50


class FrameError(ValueError):
    """Bytes that are not one valid link-layer frame (bad start, length, checksum, stop)."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str  # "ack", "short", "control" or "long"
    c: int = 0
    a: int = 0
    ci: int | None = None
    data: bytes = b""  # user data after CI (long frames)
    raw: bytes = b""


def checksum(body: bytes) -> int:
    return sum(body) & 0xFF


def short_frame(c: int, a: int) -> bytes:
    return bytes((START_SHORT, c, a, checksum(bytes((c, a))), STOP))


def long_frame(c: int, a: int, ci: int, data: bytes = b"") -> bytes:
    body = bytes((c, a, ci)) + data
    if len(body) > 255:
        raise FrameError("long frame user data longer than 252 bytes")
    return bytes((START_LONG, len(body), len(body), START_LONG)) + body + bytes(
        (checksum(body), STOP))


def snd_nke(a: int) -> bytes:
    return short_frame(C_SND_NKE, a)


def req_ud2(a: int, fcb: bool) -> bytes:
    return short_frame(C_REQ_UD2 | (FCB_BIT if fcb else 0), a)


def select_secondary(mask: str) -> bytes:
    """SND_UD to 253 with CI 0x52: select by a 16-digit mask (F = any digit)."""
    return long_frame(C_SND_UD, ADDR_NETWORK, CI_SELECT, encode_secondary(mask))


def set_primary_address(a: int, new_address: int) -> bytes:
    """SND_UD with one record DIF 0x01 VIF 0x7A (bus address), 8-bit value."""
    if not 0 <= new_address <= MAX_PRIMARY:
        raise ValueError(f"primary address must be 0-{MAX_PRIMARY}, not {new_address}")
    return long_frame(C_SND_UD, a, CI_DATA_SEND, bytes((0x01, 0x7A, new_address)))


def normalize_secondary(text: str) -> str:
    """Secondary address as 16 upper-case hex digits: 8-digit id, then manufacturer (4),
    version (2) and medium (2). An 8-digit id alone means 'any manufacturer/version/medium'."""
    s = text.strip().upper().replace(" ", "")
    if len(s) == 8:
        s += "FFFFFFFF"
    if len(s) != 16 or any(ch not in "0123456789ABCDEF" for ch in s):
        raise ValueError(f"secondary address must be 8 or 16 hex digits, not {text!r}")
    return s


def encode_secondary(mask: str) -> bytes:
    s = normalize_secondary(mask)
    ident = bytes.fromhex(s[0:8])[::-1]  # BCD id, least significant byte first
    man = bytes.fromhex(s[8:12])[::-1]
    return ident + man + bytes.fromhex(s[12:16])


def decode_secondary(header: bytes) -> str:
    """The 8 header bytes id(4) man(2) version medium, as the 16-digit secondary address."""
    if len(header) < 8:
        raise FrameError("secondary address header shorter than 8 bytes")
    return (header[0:4][::-1].hex() + header[4:6][::-1].hex() + header[6:8].hex()).upper()


def frame_length(buf: bytes | bytearray) -> int | None:
    """Total length of the frame starting at buf[0], or None while more bytes are needed.
    Raises FrameError when buf[0] cannot start a frame or the length bytes disagree."""
    if not buf:
        return None
    first = buf[0]
    if first == ACK:
        return 1
    if first == START_SHORT:
        return 5
    if first == START_LONG:
        if len(buf) < 4:
            return None
        if buf[1] != buf[2] or buf[3] != START_LONG or buf[1] < 3:
            raise FrameError(f"bad long-frame header {bytes(buf[:4]).hex(' ')}")
        return buf[1] + 6
    raise FrameError(f"byte 0x{first:02X} cannot start a frame")


def parse_frame(raw: bytes) -> Frame:
    """Check one complete frame; raise FrameError on any inconsistency."""
    n = frame_length(raw)
    if n is None or len(raw) < n:
        raise FrameError(f"frame truncated ({len(raw)} bytes)")
    if len(raw) > n:
        raise FrameError(f"{len(raw) - n} bytes after the end of the frame")
    if n == 1:
        return Frame("ack", raw=bytes(raw))
    if raw[-1] != STOP:
        raise FrameError(f"stop byte is 0x{raw[-1]:02X}, not 0x16")
    if raw[0] == START_SHORT:
        if checksum(raw[1:3]) != raw[3]:
            raise FrameError("short frame checksum mismatch")
        return Frame("short", c=raw[1], a=raw[2], raw=bytes(raw))
    body = raw[4:-2]
    if checksum(body) != raw[-2]:
        raise FrameError(
            f"checksum mismatch: frame says 0x{raw[-2]:02X}, bytes sum to 0x{checksum(body):02X}")
    kind = "control" if len(body) == 3 else "long"
    return Frame(kind, c=body[0], a=body[1], ci=body[2], data=bytes(body[3:]), raw=bytes(raw))


def bit_time(baud: int) -> float:
    return 1.0 / baud


def wire_time(n_bytes: int, baud: int) -> float:
    """Seconds to send n bytes: 11 bits each (start, 8 data, even parity, stop)."""
    return n_bytes * 11 / baud


def reply_timeout(baud: int) -> float:
    """EN 13757-2: a slave starts its reply within 330 bit times + 50 ms after the request."""
    return 330 / baud + 0.050


def idle_gap(baud: int) -> float:
    """Bus idle the standard asks for between a reply and the next request (11 bit times)."""
    return 11 / baud
