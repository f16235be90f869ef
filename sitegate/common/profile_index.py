"""The device profiles shipped with sitegate, read as data: which profiles exist for which
protocol and which quantities each reads.

The cloud checks the site files it pushes with this (``sitecheck.ProfileLookup``) without
importing the gateway's drivers; the gateway checks with its drivers' loaders, which also
check each register and mapping. The profiles themselves stay in ``drivers/profiles/``.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

from sitegate.common.sitecheck import ProfileProblem

PROFILE_ROOT = Path(__file__).resolve().parent.parent / "drivers" / "profiles"
LABEL = {"modbus": "Modbus", "mbus": "M-Bus", "relays": "relay"}


def names(protocol: str) -> list[str]:
    return sorted(p.stem for p in (PROFILE_ROOT / protocol).glob("*.toml"))


@cache
def shipped_quantities(protocol: str, name: str) -> frozenset[str]:
    """The quantities profile ``name`` reads (Modbus: its registers' names; M-Bus: its
    mappings' names), or ProfileProblem when no such profile is shipped."""
    path = PROFILE_ROOT / protocol / f"{name}.toml"
    if protocol not in LABEL or not re.fullmatch(r"[a-z0-9_]+", name) or not path.is_file():
        raise ProfileProblem(f"unknown {LABEL.get(protocol, protocol)} profile {name!r}; "
                             f"known: {', '.join(names(protocol))}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileProblem(f"{path.name}: {exc}") from exc
    if protocol == "relays":  # a relay device: its channels, as sitefile_relays checks them
        return frozenset(f"channel:{c.get('channel')}" for c in data.get("channels", [])
                         if isinstance(c, dict))
    key, field = ("registers", "quantity") if protocol == "modbus" else ("map", "name")
    return frozenset(str(item.get(field)) for item in data.get(key, [])
                     if isinstance(item, dict))
