"""Credentials the box keeps: the site file names them, a local secrets file holds them.

The cloud's desired config is retained on the broker and readable by whoever may read it,
so it never carries a password. Where a site file needs one it names a secret instead::

    [mqtt]
    username = "gw-0042"
    password_secret = "mqtt"          # instead of password = "..."

    [[ocpp.charge_points]]
    id = "cp-01"
    password_secret = "cp-01"

(the same for a Shelly device under ``[[relays.devices]]``)

and the box's secrets file (``/etc/sitegate/secrets.toml``, or ``$SITEGATE_SECRETS``; owner
only, mode 0600) holds them as ``name = "value"`` lines. The daemon resolves the names when
it loads its site file and when it takes a desired config; a desired config holding a
literal password is refused, naming the key.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from sitegate.common.sitecheck import ConfigError, Problem, path_str
from sitegate.common.sitefile import SiteConfig, find_line

ENV = "SITEGATE_SECRETS"
DEFAULT = Path("/etc/sitegate/secrets.toml")
MAX_BYTES = 64 * 1024


def secrets_path() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT)


def literal_credentials(cfg: SiteConfig) -> list[str]:
    """The keys of ``cfg`` that hold a credential itself (not the name of one)."""
    found = []
    if cfg.mqtt is not None and cfg.mqtt.password:
        found.append("mqtt.password")
    if cfg.ocpp is not None:
        found += [f"ocpp.charge_points[{i}].password"
                  for i, cp in enumerate(cfg.ocpp.charge_points) if cp.password]
    if cfg.relays is not None:
        found += [f"relays.devices[{i}].password" for i, d in enumerate(cfg.relays.devices)
                  if getattr(d, "password", None)]
    return found


Loc = tuple[str | int, ...]


def _references(cfg: SiteConfig) -> list[tuple[Loc, str]]:
    """(location of the key, secret name) of every named secret in ``cfg``."""
    refs: list[tuple[Loc, str]] = []
    if cfg.mqtt is not None and cfg.mqtt.password_secret:
        refs.append((("mqtt", "password_secret"), cfg.mqtt.password_secret))
    if cfg.ocpp is not None:
        refs += [(("ocpp", "charge_points", i, "password_secret"), cp.password_secret)
                 for i, cp in enumerate(cfg.ocpp.charge_points) if cp.password_secret]
    if cfg.relays is not None:
        refs += [(("relays", "devices", i, "password_secret"), d.password_secret)
                 for i, d in enumerate(cfg.relays.devices) if getattr(d, "password_secret", None)]
    return refs


def missing(cfg: SiteConfig, source: str, path: Path | None = None,
            text: str | None = None) -> list[Problem]:
    """A problem for each secret ``cfg`` names that the secrets file does not hold, at the
    line of its key when ``text`` (the site file's) is given; ConfigError when the secrets
    file itself cannot be used."""
    refs = _references(cfg)
    if not refs:
        return []
    path = path or secrets_path()
    secrets = load(path, source)
    return [Problem(path_str(loc), f"no secret {name!r} in {path}",
                    find_line(text, loc) if text else None)
            for loc, name in refs if name not in secrets]


def not_checkable_here(cfg: SiteConfig, path: Path | None = None) -> str | None:
    """Why this user cannot check the secrets ``cfg`` names against the secrets file, if so:
    none there (a site file checked away from its box), or not readable by this user (the
    daemon's user may read it); None when it can be checked or nothing is named."""
    path = path or secrets_path()
    if not _references(cfg):
        return None
    if not path.exists():
        return f"no secrets file {path} here (${ENV} names another)"
    if not os.access(path, os.R_OK):
        return f"{path} is not readable by this user (run as the daemon's user)"
    return None


def load(path: Path, source: str) -> dict[str, str]:
    """The secrets file: a flat table of strings, readable by its owner only."""
    where = f"secrets file {path}"
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(source, [Problem("", f"{where} is open to others "
                                                   f"({stat.filemode(st.st_mode)}): chmod 600")])
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"{where}: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(source, [Problem("", f"{where} is larger than {MAX_BYTES} bytes")])
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(source, [Problem("", f"{where}: not valid TOML: {exc}")]) from None
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ConfigError(source, [Problem("", f"{where}: {k}: not a string") for k in bad])
    return data


def resolve(cfg: SiteConfig, source: str, path: Path | None = None) -> SiteConfig:
    """``cfg`` with every named secret filled in from the secrets file (read only when a
    name is used). ConfigError naming each key whose secret is missing."""
    if not _references(cfg):
        return cfg
    path = path or secrets_path()
    secrets = load(path, source)
    try:
        text: str | None = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None  # e.g. a desired config: no file, no lines
    if problems := missing(cfg, source, path, text):
        raise ConfigError(source, problems)
    update: dict[str, Any] = {}
    if cfg.mqtt is not None and cfg.mqtt.password_secret:
        update["mqtt"] = cfg.mqtt.model_copy(update={
            "password": secrets[cfg.mqtt.password_secret], "password_secret": None})
    if cfg.ocpp is not None:
        cps = [cp.model_copy(update={"password": secrets[cp.password_secret],
                                     "password_secret": None}) if cp.password_secret else cp
               for cp in cfg.ocpp.charge_points]
        update["ocpp"] = cfg.ocpp.model_copy(update={"charge_points": cps})
    if cfg.relays is not None:
        devices = [d.model_copy(update={"password": secrets[name], "password_secret": None})
                   if (name := getattr(d, "password_secret", None)) else d
                   for d in cfg.relays.devices]
        update["relays"] = cfg.relays.model_copy(update={"devices": devices})
    return cfg.model_copy(update=update)
