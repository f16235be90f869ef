"""Checks of a site file beyond the shape of each value: the parts must fit together.

They work on the raw data (the parsed TOML or JSON), not on a validated model, so that one
run reports every problem: a meter naming an unknown bus is reported together with a unit
out of range elsewhere, which a model validator (run only once every field is valid) cannot.
Problems are typed (``Problem``: key path, message, line), never strings to split again.

Device profiles are data the gateway's drivers load; the checks only need to know, for a
protocol and a profile name, which quantities it reads. The caller passes that lookup
(``ProfileLookup``): the gateway its drivers' loaders, the cloud the shipped profile index
(``sitegate.common.profile_index``), so neither program imports the other's code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sitegate.common.sitefile_ocpp import MAIN_METER_CURRENTS
from sitegate.common.sitefile_relays import relay_problems, relay_profile_problems

if TYPE_CHECKING:
    from sitegate.common.sitefile import SiteConfig

Loc = tuple[str | int, ...]


class ProfileProblem(ValueError):
    """A profile that is unknown for its protocol or does not load (the message says which)."""


# (protocol "modbus" | "mbus", profile name) -> the quantities the profile reads.
ProfileLookup = Callable[[str, str], frozenset[str]]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '(top level)'}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message}


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems))


def path_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _tables(data: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The elements of an array of tables that are tables (the schema reports the others)."""
    items = data.get(key)
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield i, item


def _main_meter(data: dict[str, Any]) -> str | None:
    ocpp = data.get("ocpp")
    lm = ocpp.get("load_management") if isinstance(ocpp, dict) else None
    main = lm.get("main_meter") if isinstance(lm, dict) else None
    return main if isinstance(main, str) else None


def _wire(bus: dict[str, Any]) -> tuple[tuple[str, ...], Loc] | None:
    """The half-duplex line a bus occupies, or None where several clients may share it."""
    serial, tcp = bus.get("serial"), bus.get("tcp")
    if isinstance(serial, dict) and isinstance(serial.get("port"), str):
        return ("serial", serial["port"]), ("serial", "port")
    if isinstance(tcp, dict) and isinstance(tcp.get("host"), str):
        mbus = bus.get("protocol") == "mbus"
        if mbus or tcp.get("framing", "tcp") != "tcp":
            port = tcp.get("port", 10001 if mbus else 502)
            return ("tcp", tcp["host"].lower(), str(port)), ("tcp",)
    return None


def cross_problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Every way the buses, meters and load management do not fit together."""
    out: list[tuple[Loc, str]] = []
    protocols: dict[str, str] = {}
    wires: dict[tuple[str, ...], str] = {}
    for i, b in _tables(data, "buses"):
        name = b.get("name")
        if isinstance(name, str):
            if name in protocols:
                out.append((("buses", i, "name"), f"bus name {name!r} appears twice"))
            protocols.setdefault(name, str(b.get("protocol", "modbus")))
        # RS485 and M-Bus are half duplex: one worker per wire. Two buses on one serial port
        # or one transparent converter would interleave their requests (garbled replies).
        # Modbus TCP (MBAP) devices serve several clients, so those may be shared.
        found = _wire(b)
        if found is None:
            continue
        wire, key = found
        if wire in wires:
            out.append((("buses", i, *key),
                        f"bus {wires[wire]!r} is already on {wire[1]}"
                        f"{':' + wire[2] if len(wire) > 2 else ''}: one bus per "
                        "half-duplex line (put the meters on one bus)"))
        wires.setdefault(wire, str(name))
    seen: set[str] = set()
    for i, m in _tables(data, "meters"):
        mid, bus = m.get("id"), m.get("bus")
        if isinstance(mid, str):
            if mid in seen:
                out.append((("meters", i, "id"), f"meter id {mid!r} appears twice"))
            seen.add(mid)
        if not isinstance(bus, str):
            continue
        protocol = protocols.get(bus)
        if protocol is None:
            out.append((("meters", i, "bus"),
                        f"meter {mid!r}: bus {bus!r} is not defined in [[buses]]"
                        f"; known: {', '.join(protocols) or 'none'}"))
        elif protocol == "modbus" and m.get("unit") is None:
            out.append((("meters", i),
                        f"meter {mid!r} is on Modbus bus {bus!r} and needs 'unit'"))
        elif protocol == "mbus" and (m.get("address") is None) == (m.get("secondary") is None):
            out.append((("meters", i),
                        f"meter {mid!r} is on M-Bus bus {bus!r} and needs exactly one of "
                        "'address' or 'secondary'"))
    main = _main_meter(data)
    if main is not None and main not in seen:
        out.append((("ocpp", "load_management", "main_meter"),
                    f"meter {main!r} is not defined in [[meters]]; known: "
                    f"{', '.join(sorted(seen)) or 'none'}"))
    return out + relay_problems(data)


def _quantities(lookup: ProfileLookup, protocol: str | None,
                profile: str) -> tuple[frozenset[str] | None, str | None]:
    """(quantities, problem) of a profile; with the bus unknown, either protocol will do."""
    if protocol in ("modbus", "mbus"):
        try:
            return lookup(protocol, profile), None
        except ProfileProblem as exc:
            return None, str(exc)
    for p in ("modbus", "mbus"):
        try:
            return lookup(p, profile), None
        except ProfileProblem:
            continue
    return None, f"unknown profile {profile!r} (neither a Modbus nor an M-Bus profile)"


def profile_problems(data: dict[str, Any], lookup: ProfileLookup) -> list[tuple[Loc, str]]:
    """Every meter's profile must exist and load for its bus's protocol; the main meter of
    OCPP load management must read the per-phase currents the daemon shares out."""
    protocols = {b["name"]: str(b.get("protocol", "modbus"))
                 for _, b in _tables(data, "buses") if isinstance(b.get("name"), str)}
    main = _main_meter(data)
    out: list[tuple[Loc, str]] = []
    for i, m in _tables(data, "meters"):
        profile = m.get("profile")
        if not isinstance(profile, str):
            continue  # the schema reports it
        bus = m.get("bus")
        quantities, problem = _quantities(
            lookup, protocols.get(bus) if isinstance(bus, str) else None, profile)
        if problem is not None:
            out.append((("meters", i, "profile"), problem))
        if quantities is None or m.get("id") != main:
            continue
        missing = [q for q in MAIN_METER_CURRENTS if q not in quantities]
        if missing:
            out.append((("ocpp", "load_management", "main_meter"),
                        f"meter {main!r} (profile {profile!r}) does not read "
                        f"{', '.join(missing)}: load management needs the current of each "
                        "phase"))
    return out + relay_profile_problems(data, lookup)


def config_warnings(cfg: SiteConfig) -> list[tuple[Loc, str]]:
    """Valid, but probably not what the installer meant: shown by check-config and logged at
    start, never refused."""
    out: list[tuple[Loc, str]] = []
    lm = cfg.ocpp.load_management if cfg.ocpp is not None else None
    if lm is not None and lm.enabled and lm.main_meter is not None:
        i = next(i for i, m in enumerate(cfg.meters) if m.id == lm.main_meter)
        every = cfg.meters[i].interval
        if every >= lm.stale_after:
            out.append((("meters", i, "interval"),
                        f"the main meter is read every {every} s but its data counts as stale "
                        f"after {lm.stale_after:g} s (ocpp.load_management.stale_after): load "
                        "management would always run the chargers on the fallback current"))
        elif every > 10:
            out.append((("meters", i, "interval"),
                        f"the main meter is read every {every} s; load management reacts to "
                        "an overload only at a reading: 1-5 s is usual"))
    if cfg.ocpp is not None and cfg.ocpp.security.profile == 0:
        out.append((("ocpp", "security", "profile"),
                    "0 lets any charger on the network act as a listed one (no password): "
                    "use 1 (basic auth) or 2 (basic auth over TLS)"))
    return out
