"""The desired configuration from the cloud: validated whole, checked for what can change
live, and persisted next to the buffer so that a restart runs what was last applied.

Only ``buses``, ``meters`` and ``storage.max_mb`` change live. ``gateway_id``,
``storage.path``, ``health``, ``mqtt`` and ``ocpp`` belong to the box's installation (the
local site file): a desired config that changes any of them is refused whole, naming them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitegate.common.sitecheck import ConfigError, Problem
from sitegate.common.sitefile import SiteConfig, parse_config, validate
from sitegate.gateway import secrets
from sitegate.gateway.profiles import driver_quantities

FIXED = ("gateway_id", "storage.path", "health", "mqtt", "ocpp")
LIVE = "buses, meters and storage.max_mb"


def parse_desired(config: str | dict[str, Any], source: str) -> SiteConfig:
    """The whole desired config, checked like ``sitegate check-config`` checks a file.

    ``config`` is the site file's TOML text, or the same as a dict (JSON). Raises
    ConfigError naming every bad key."""
    if isinstance(config, str):
        cfg = parse_config(config, source, driver_quantities)
    else:
        cfg = validate(config, source, profiles=driver_quantities)
    creds = secrets.literal_credentials(cfg)
    if creds:  # retained on the broker: a credential in it is a leaked credential
        raise ConfigError(source, [Problem(k, "a credential in the desired config is refused: "
                                              "name it (password_secret = \"name\"); the box "
                                              "keeps it in its secrets file") for k in creds])
    return secrets.resolve(cfg, source)


def fixed_changes(running: SiteConfig, desired: SiteConfig) -> list[str]:
    """The parts a desired config changes that cannot be applied while running."""
    pairs = {
        "gateway_id": (running.gateway_id, desired.gateway_id),
        "storage.path": (running.storage.path, desired.storage.path),
        "health": (running.health, desired.health),
        "mqtt": (running.mqtt, desired.mqtt),
        "ocpp": (running.ocpp, desired.ocpp),
        "relays": (running.relays, desired.relays),  # points hold sessions and readers
    }
    return [name for name, (a, b) in pairs.items() if a != b]


def live_changes(site_file: SiteConfig, running: SiteConfig) -> list[str]:
    """The live parts in which the site file differs from the running config."""
    pairs = {
        "buses": (site_file.buses, running.buses),
        "meters": (site_file.meters, running.meters),
        "storage.max_mb": (site_file.storage.max_mb, running.storage.max_mb),
    }
    return [name for name, (a, b) in pairs.items() if a != b]


def merged(local: SiteConfig, desired: SiteConfig) -> SiteConfig:
    """The installation's fixed parts with the desired live parts."""
    storage = local.storage.model_copy(update={"max_mb": desired.storage.max_mb})
    return local.model_copy(update={"buses": desired.buses, "meters": desired.meters,
                                    "storage": storage})


def changed_buses(old: SiteConfig, new: SiteConfig) -> set[str]:
    """Buses whose worker must be replaced: the bus's settings or its meters changed, or
    the bus came or went."""
    def shape(cfg: SiteConfig) -> dict[str, tuple[Any, list[Any]]]:
        return {b.name: (b, [m for m in cfg.meters if m.bus == b.name]) for b in cfg.buses}

    a, b = shape(old), shape(new)
    return {name for name in a.keys() | b.keys() if a.get(name) != b.get(name)}


@dataclass(frozen=True)
class Applied:
    """A desired config this gateway applied: kept as the cloud sent it."""

    version: int
    config: str | dict[str, Any]
    applied_at: str

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "config": self.config,
                           "applied_at": self.applied_at}, indent=1)


def applied_path(storage_path: str) -> Path:
    """``<buffer file>.applied-config.json``, beside the buffer (the writable state dir)."""
    p = Path(storage_path)
    return p.with_name(p.name + ".applied-config.json")


def save(path: Path, version: int, config: str | dict[str, Any]) -> Applied:
    """Write atomically (temp file, fsync, rename): a crash leaves the old or the new one."""
    applied = Applied(version, config, datetime.now(UTC).isoformat())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(applied.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return applied


def load(path: Path) -> Applied | None:
    """The persisted applied config, None when there is none; ValueError when unreadable."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from exc
    if not (isinstance(d, dict) and isinstance(d.get("version"), int)
            and isinstance(d.get("config"), str | dict)):
        raise ValueError(f"{path}: not an applied config (version, config)")
    return Applied(d["version"], d["config"], str(d.get("applied_at")))
