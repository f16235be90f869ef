"""Field conditions in one line: what failed on a bus, and what a technician should check.

Used by every tool that talks to a bus (``sitegate modbus``, ``sitegate mbus``, ``sitegate
read``) so that a closed port, a missing adapter or a silent meter is a sentence and an
exit code, never a traceback. Where the driver's error does not say why a link failed
(pymodbus only reports "cannot open"), the link is probed once more to find the reason.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

from sitegate.drivers.base import BusError, DeviceError, LinkSettings, NoResponse

EXIT_FIELD = 2  # a field condition: nothing wrong with the program, check the installation

FIELD_ERRORS = (BusError, NoResponse, DeviceError, OSError, TimeoutError)


def quiet_pymodbus() -> None:
    """pymodbus logs each failed connect itself; a tool says it once, with what to check."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _serial_reason(device: str) -> str:
    if not os.path.exists(device):
        return (f"{device}: no such serial device. Check: is the USB-RS485 (or M-Bus level) "
                "adapter plugged in, and its name (ls /dev/serial/by-id/)")
    if not os.access(device, os.R_OK | os.W_OK):
        return (f"{device}: permission denied. Check: run as the sitegate user or add the "
                "user to the dialout group")
    return ""


def _tcp_reason(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=2):
            return ""
    except socket.gaierror:
        return f"{host}: unknown host name. Check: --host, the converter's address or DNS"
    except ConnectionRefusedError:
        return (f"{host}:{port}: connection refused, nothing listens on that port. Check: "
                "the TCP port (--port) and that the device or converter is powered and "
                "in TCP server mode")
    except TimeoutError:
        return (f"{host}:{port}: no answer (timed out). Check: the IP address, the network "
                "cable and any firewall between here and the converter")
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return f"{host}:{port}: unreachable. Check: the IP address and the network"
        return f"{host}:{port}: {exc.strerror or exc}. Check: the address and the network"


def explain(link: LinkSettings, exc: BaseException, what: str = "meter") -> str:
    """One line for the technician: what failed and what to check."""
    if isinstance(exc, NoResponse):
        return (f"{exc}. Check: the wiring (A/B swapped, termination), the {what}'s "
                "address and the baud rate and parity (a scan finds them)")
    if isinstance(exc, DeviceError):
        return (f"the {what} answered with an error: {exc}. Check: the profile matches the "
                "device (its register map or telegram)")
    reason = ""
    if link.serial_port:
        reason = _serial_reason(link.serial_port)
    elif link.host:
        reason = _tcp_reason(link.host, link.port or 502)
    return reason or f"{link.describe()}: {exc}. Check: the link settings and the cabling"
