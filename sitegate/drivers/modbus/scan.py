"""Finding the Modbus devices on a bus: which unit ids answer, and (``identify``) which
profile fits each one.

Any reply, even a Modbus exception, proves a device listens at a unit id; a garbled reply
says something is there at another baud rate or parity. Shared by ``sitegate modbus scan``
and the cloud's ``modbus.scan`` command (which runs on the daemon's bus, one unit at a
time between polls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from sitegate.drivers.base import DeviceError, NoResponse
from sitegate.drivers.modbus.client import ModbusBusClient
from sitegate.drivers.modbus.identify import identify as identify_unit
from sitegate.drivers.modbus.planner import Block


async def probe(client: ModbusBusClient, unit: int) -> str | None:
    """What answers at ``unit``: None for silence."""
    for function in ("holding", "input"):
        try:
            await client.read_block(unit, Block(function, 0, 1))
            return "answers"
        except DeviceError as exc:
            if exc.kind == "modbus_exception":
                return "answers (exception for register 0)"
            return f"garbled reply ({exc.kind})"
        except NoResponse:
            return None
    return None


async def scan_units(client: ModbusBusClient, units: Sequence[int], *, identify: bool = False,
                     baud: int | None = None,
                     progress: Callable[[int, int, str], None] | None = None,
                     found: Callable[[dict[str, Any]], None] | None = None,
                     lock: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
                     ) -> list[dict[str, Any]]:
    """Every unit of ``units`` that answers, as ``{"unit", "baud", "result"}`` (with the
    identification's ``profile``, ``proposed``, ``serial``, ``model_code``, ``note`` when
    ``identify``). ``lock``: taken around each unit's exchanges (a bus shared with polls)."""
    out = []
    hold: Callable[[], AbstractAsyncContextManager[Any]] = lock or nullcontext
    for i, unit in enumerate(units):
        if progress:
            progress(i, len(units), f"unit {unit}" + (f" @ {baud}" if baud else ""))
        async with hold():
            verdict = await probe(client, unit)
            if not verdict:
                continue
            row: dict[str, Any] = {"unit": unit, "baud": baud, "result": verdict}
            if identify and not verdict.startswith("garbled"):
                ident = await identify_unit(client, unit)
                row.update({k: v for k, v in ident.to_dict().items() if k != "unit"})
        out.append(row)
        if found:
            found(row)
    return out


def found_text(row: dict[str, Any]) -> str:
    text = f"unit {row['unit']}" + (f" @ {row['baud']}" if row.get("baud") else "") \
        + f": {row['result']}"
    if "proposed" in row:
        if row.get("profile"):
            text += f", {row['profile']}" + (f" serial {row['serial']}" if row.get("serial")
                                            else "")
        else:
            text += f" ({row.get('note') or 'not identified'})"
    return text

