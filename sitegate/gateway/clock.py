"""Is the system clock synchronized? Asked of the kernel, which NTP/chrony keep informed.

A gateway without RTC boots at some stale time and stays there until NTP reaches a
server; readings taken meanwhile carry wrong timestamps. The kernel knows: ``adjtimex``
(read-only, modes=0) returns TIME_ERROR and sets STA_UNSYNC in ``status`` until a time
daemon declares the clock synchronized.

When the kernel cannot be asked (not Linux, no libc, the call fails), this reports the
clock as NOT synchronized: a reading flagged for nothing costs a note in a report, an
unflagged reading at a wrong time costs a wrong bill. That case is logged once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import structlog

log = structlog.get_logger(__name__)

TIME_ERROR = 5  # adjtimex return value: clock not synchronized
STA_UNSYNC = 0x0040
STA_CLOCKERR = 0x1000


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> (glibc, LP64 and ILP32 with 32-bit time_t), padded
    # generously at the end so a larger kernel struct never writes past our buffer.
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time", _Timeval), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("_pad", ctypes.c_byte * 256),
    ]


@functools.cache
def _adjtimex():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    fn = libc.adjtimex
    fn.argtypes = [ctypes.POINTER(_Timex)]
    fn.restype = ctypes.c_int
    return fn


def clock_state() -> str:
    """One of "synchronized", "unsynchronized" (the kernel says so), "unknown" (cannot ask)."""
    try:
        tx = _Timex()  # zeroed: modes=0 only reads
        rc = _adjtimex()(ctypes.byref(tx))
    except (OSError, AttributeError, TypeError) as exc:
        _warn_unknown(str(exc))
        return "unknown"
    if rc < 0:
        _warn_unknown(f"adjtimex failed, errno {ctypes.get_errno()}")
        return "unknown"
    if rc == TIME_ERROR or tx.status & (STA_UNSYNC | STA_CLOCKERR):
        return "unsynchronized"
    return "synchronized"


@functools.cache
def _warn_unknown(reason: str) -> None:
    log.warning("clock.state_unknown", reason=reason,
                note="readings will be flagged clock_unsynced")


def clock_synchronized() -> bool:
    """True only when the kernel says the clock is synchronized (see the module text)."""
    return clock_state() == "synchronized"
