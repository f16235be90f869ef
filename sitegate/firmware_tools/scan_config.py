"""A bus scan as site-file entries (``sitegate modbus|mbus scan --write-config SITE``).

The scan's link becomes a ``[[buses]]`` entry unless the site file already has a bus on
that line (then its meters join that bus); every device found becomes a ``[[meters]]``
entry with the profile the scan proposed. What cannot be written is said with the reason
and never guessed: a device no profile was proposed for (``--profile`` gives one), one
already in the site file, a Modbus unit answering at another baud rate than the bus runs
at, M-Bus meters that collide on one address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

IDENTIFIER = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass
class Link:
    """Where the scan ran, in the site file's terms."""

    protocol: str  # "modbus" | "mbus"
    serial_port: str | None = None
    baudrate: int | None = None
    parity: str | None = None
    stopbits: int | None = None
    host: str | None = None
    port: int | None = None
    framing: str | None = None

    def table(self) -> dict[str, Any]:
        if self.serial_port:
            s: dict[str, Any] = {"port": self.serial_port}
            if self.baudrate:
                s["baudrate"] = self.baudrate
            if self.protocol == "modbus" and self.parity and self.parity != "N":
                s["parity"] = self.parity
            if self.stopbits and self.stopbits != 1:
                s["stopbits"] = self.stopbits
            return {"serial": s}
        t: dict[str, Any] = {"host": self.host}
        if self.port:
            t["port"] = self.port
        if self.protocol == "modbus" and self.framing and self.framing != "tcp":
            t["framing"] = self.framing
        return {"tcp": t}

    def same_line(self, bus: dict[str, Any]) -> bool:
        if str(bus.get("protocol", "modbus")) != self.protocol:
            return False
        serial, tcp = bus.get("serial"), bus.get("tcp")
        if self.serial_port:
            return isinstance(serial, dict) and serial.get("port") == self.serial_port
        default = 10001 if self.protocol == "mbus" else 502
        return (isinstance(tcp, dict) and str(tcp.get("host", "")).lower() == str(
            self.host).lower() and int(tcp.get("port", default)) == (self.port or default))


@dataclass
class Proposal:
    bus: dict[str, Any] | None  # a new [[buses]] entry, or None: the site file has the bus
    bus_name: str
    meters: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"bus": self.bus_name, "new_bus": self.bus is not None,
                "meters": self.meters, "skipped": self.skipped}


def _bus_for(site: dict[str, Any], link: Link, name: str | None) -> tuple[dict[str, Any] | None,
                                                                          str, dict[str, Any]]:
    buses = [b for b in site.get("buses") or [] if isinstance(b, dict)]
    for b in buses:
        if link.same_line(b):
            return None, str(b.get("name")), b
    names = {str(b.get("name")) for b in buses}
    if name is None:
        base = "mbus" if link.protocol == "mbus" else "rs485" if link.serial_port else "modbus"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
    new = {"name": name, **({"protocol": "mbus"} if link.protocol == "mbus" else {}),
           **link.table()}
    return new, name, new


class _Ids:
    def __init__(self, site: dict[str, Any]) -> None:
        self.taken = {str(m.get("id")) for m in site.get("meters") or [] if isinstance(m, dict)}

    def new(self, wanted: str) -> str:
        wanted = IDENTIFIER.sub("-", wanted)[:60]
        out, n = wanted, 1
        while out in self.taken:
            n += 1
            out = f"{wanted}-{n}"
        self.taken.add(out)
        return out


def modbus(site: dict[str, Any], link: Link, found: list[dict[str, Any]],
           bus_name: str | None = None, fallback: str | None = None,
           interval: int | None = None) -> Proposal:
    """``found``: the scan's devices, ``{"unit", "baud", "profile", "serial", ...}``."""
    new, name, bus = _bus_for(site, link, bus_name)
    if new is not None and link.serial_port:
        bauds = [f.get("baud") for f in found if f.get("baud")]
        if bauds:  # the rate most devices answered at
            new["serial"]["baudrate"] = max(set(bauds), key=bauds.count)
    serial = bus.get("serial") if isinstance(bus.get("serial"), dict) else None
    bus_baud = int(serial.get("baudrate", 9600)) if serial else None
    used = {int(m["unit"]): str(m.get("id")) for m in site.get("meters") or []
            if isinstance(m, dict) and m.get("bus") == name and isinstance(m.get("unit"), int)}
    ids = _Ids(site)
    out = Proposal(new, name)
    for f in found:
        unit = int(f["unit"])
        if unit in used:
            out.skipped.append(f"unit {unit}: already in the site file as meter {used[unit]!r}")
            continue
        if bus_baud and f.get("baud") and int(f["baud"]) != bus_baud:
            out.skipped.append(f"unit {unit}: answers at {f['baud']} baud, bus {name!r} runs "
                               f"at {bus_baud}: set the meter to {bus_baud} (`sitegate modbus "
                               f"set-address --new-baud {bus_baud}`) and scan again")
            continue
        profile = f.get("profile") or fallback
        if not profile:
            why = f.get("note") or "no profile proposed"
            out.skipped.append(f"unit {unit}: {why}; give --profile NAME to write it anyway")
            continue
        entry: dict[str, Any] = {"id": ids.new(f"{name}-{unit}"), "bus": name, "unit": unit,
                                 "profile": profile}
        if interval:
            entry["interval"] = interval
        if f.get("serial"):
            entry["serial"] = str(f["serial"])
        out.meters.append(entry)
        used[unit] = entry["id"]
    return out


def mbus(site: dict[str, Any], link: Link, found: list[dict[str, Any]],
         bus_name: str | None = None, profile_for: Any = None,
         interval: int | None = None) -> Proposal:
    """``found``: the scan's meters (``Found.to_dict()``); ``profile_for(found)`` proposes
    a profile (the generic one when no specific profile claims the meter)."""
    new, name, _ = _bus_for(site, link, bus_name)
    meters = [m for m in site.get("meters") or [] if isinstance(m, dict)]
    by_secondary = {str(m["secondary"]).upper()[:8]: str(m.get("id")) for m in meters
                    if m.get("secondary")}
    by_address = {int(m["address"]): str(m.get("id")) for m in meters
                  if m.get("bus") == name and isinstance(m.get("address"), int)}
    ids = _Ids(site)
    out = Proposal(new, name)
    ident_count: dict[str, int] = {}
    for f in found:
        if f.get("secondary"):
            key = str(f["secondary"])[:8]
            ident_count[key] = ident_count.get(key, 0) + 1
    for f in found:
        secondary, primary = f.get("secondary"), f.get("primary")
        where = (f"secondary {secondary}" if secondary else f"primary {primary}")
        if f.get("note", "").startswith("collision"):
            out.skipped.append(f"{where}: {f['note']}: give the meters distinct addresses "
                               "(`sitegate mbus set-address`) and scan again")
            continue
        if not secondary and primary is None:
            out.skipped.append(f"a meter without address: {f.get('note', '')}")
            continue
        ident = str(secondary)[:8] if secondary else None
        if ident and ident_count.get(ident, 0) > 1:
            out.skipped.append(f"{where}: {ident_count[ident]} meters report id {ident}: "
                               "address them by primary address instead")
            continue
        if ident and ident in by_secondary:
            out.skipped.append(f"{where}: already in the site file as meter "
                               f"{by_secondary[ident]!r}")
            continue
        if not ident and primary in by_address:
            out.skipped.append(f"{where}: already in the site file as meter "
                               f"{by_address[primary]!r}")
            continue
        entry: dict[str, Any] = {"id": ids.new(f"{name}-{ident or f'a{primary}'}"),
                                 "bus": name}
        # by secondary address where known: it is on the label and survives re-addressing
        if ident:
            entry["secondary"] = ident
        else:
            entry["address"] = primary
        entry["profile"] = profile_for(f) if profile_for else "mbus_generic"
        if interval:
            entry["interval"] = interval
        if ident:
            entry["serial"] = ident
        out.meters.append(entry)
    return out
