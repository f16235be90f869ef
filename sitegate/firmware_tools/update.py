"""Applying a signed update bundle (see sitegate.common.release) beside the running version:

1. check the bundle whole against the release keys this gateway trusts
   (``/etc/sitegate/release-keys/*.pub``), and refuse a version not newer than the running
   one;
2. install its wheels, offline and exactly the signed pins, into a new venv
   ``<root>/releases/<version>`` (``<root>`` = /opt/sitegate);
3. switch ``<root>/current`` to it (one atomic symlink rename; /usr/bin/sitegate goes
   through it) and restart the service;
4. wait for the new version to report healthy on the control socket: it answers, runs the
   new version, has completed a poll cycle (when it has meters) and its uplink is
   connected (when it has one); if it does not within the set time, switch back, restart,
   and report the roll-back.

The state directory (buffer, identity) is never touched: both versions use it as it is.
The outcome is kept in ``<root>/last-update.json`` for the daemon to report.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitegate.common import release, signing

# Where the package installs (debian/); the environment names others (a test, a box laid
# out otherwise): the daemon finds its install root and trusted keys the same way.
DEFAULT_ROOT = Path(os.environ.get("SITEGATE_INSTALL_ROOT", "/opt/sitegate"))
DEFAULT_KEYS = Path(os.environ.get("SITEGATE_RELEASE_KEYS", "/etc/sitegate/release-keys"))
RESULT = "last-update.json"


class UpdateError(Exception):
    """The update was not installed; the text says why (one line). Nothing was switched."""


@dataclass
class Outcome:
    outcome: str  # "switched" | "rolled_back" | "refused"
    version: str | None
    previous: str | None
    running: str | None  # the version running at the end
    reason: str | None
    health: dict[str, Any] | None
    at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- what runs now ----------------------------------------------------------------------------


def running_version(root: Path) -> str:
    """The version of sitegate in ``<root>/current``, from its installed metadata."""
    venv = root / "current"
    found = sorted(venv.glob("lib/python3*/site-packages/sitegate-*.dist-info"))
    if not found:
        raise UpdateError(f"{venv}: no sitegate installed there (is {root} the install root?)")
    return found[-1].name.removeprefix("sitegate-").removesuffix(".dist-info")


def _venv_cfg(venv: Path) -> dict[str, str]:
    try:
        text = (venv / "pyvenv.cfg").read_text()
    except OSError as exc:
        raise UpdateError(f"{venv}: not a venv ({exc.strerror})") from None
    return {k.strip(): v.strip() for k, _, v in
            (ln.partition("=") for ln in text.splitlines()) if v}


def base_python(venv: Path) -> tuple[str, str]:
    """(interpreter, cpXY tag) the venv was made with: the new one is made with it too."""
    cfg = _venv_cfg(venv)
    exe = cfg.get("executable") or str(Path(cfg.get("home", "/usr/bin")) / "python3")
    m = re.match(r"(\d+)\.(\d+)", cfg.get("version", cfg.get("version_info", "")))
    if not m:
        raise UpdateError(f"{venv}/pyvenv.cfg: no Python version")
    return exe, f"cp{m.group(1)}{m.group(2)}"


def trusted_keys(directory: Path) -> list[signing.Ed25519PublicKey]:
    keys = []
    for path in sorted(directory.glob("*.pub")) if directory.is_dir() else []:
        try:
            keys.append(signing.load_public(path))
        except (OSError, ValueError) as exc:
            raise UpdateError(f"trusted key {path}: {exc}") from None
    if not keys:
        raise UpdateError(f"no trusted release key in {directory} (put the cloud's "
                          "release.pub there)")
    return keys


# -- install, switch, check, roll back ----------------------------------------------------------


def install(bundle: Path, root: Path, keys_dir: Path) -> tuple[release.Manifest, str, Path]:
    """Check and install the bundle into a new venv beside the running one (nothing
    switched yet): (manifest, running version, the new venv)."""
    keys = trusted_keys(keys_dir)
    running = running_version(root)
    current = root / "current"
    python, tag = base_python(current)
    with tempfile.TemporaryDirectory(prefix="update-", dir=root) as work:
        try:
            manifest = release.read_bundle(bundle, keys, Path(work))
        except release.ReleaseError as exc:
            raise UpdateError(str(exc)) from None
        if release.version_key(manifest.version) <= release.version_key(running):
            raise UpdateError(f"version {manifest.version} is not newer than the running "
                              f"{running}: a downgrade or the same version is refused")
        if manifest.python != tag:
            raise UpdateError(f"the bundle's wheels are for {manifest.python}, this gateway "
                              f"runs {tag}")
        target = root / "releases" / manifest.version
        if target.exists():  # an earlier attempt at this version; never the running one
            shutil.rmtree(target)
        target.parent.mkdir(exist_ok=True)
        _run([python, "-m", "venv", "--without-pip", str(target)], "make the venv")
        # The running venv's pip installs into the new one: offline, exactly the signed
        # pins, wheels only (nothing resolved or built on the box).
        _run([str(current / "bin" / "python"), "-m", "pip", "--python",
              str(target / "bin" / "python"), "install", "--quiet", "--no-index",
              "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
              "--find-links", work, *manifest.requirements], "install the wheels")
        _run([str(target / "bin" / "python"), "-m", "compileall", "-q", "-j", "0",
              str(target / "lib")], "compile")
    return manifest, running, target


def switch(root: Path, target: str) -> None:
    """Point ``<root>/current`` at ``target`` (relative to root) in one rename."""
    tmp = root / "current.new"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, root / "current")


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        why = (res.stderr.strip() or res.stdout.strip()).splitlines()
        raise UpdateError(f"cannot {what}: {why[-1] if why else f'exit {res.returncode}'}")


def healthy(status: dict[str, Any], version: str,
            since: datetime | None = None) -> str | None:
    """None when ``status`` (the daemon's) shows ``version`` healthy, started after
    ``since`` (the restart), else what is missing."""
    if status.get("version") != version:
        return f"running version {status.get('version')!r}, not {version}"
    started = datetime.fromisoformat(status["started"])
    if since is not None and started < since:
        # the process from before the restart, still stopping (an older daemon reads its
        # version through the switched link)
        return "the daemon from before the restart still answers"
    meters = [m for b in status.get("buses", []) for m in b.get("meters", [])]
    if meters and not any(m.get("last_success") and datetime.fromisoformat(
            m["last_success"]) >= started for m in meters):
        return "no successful poll cycle yet"
    sync = (status.get("services") or {}).get("SyncClient")
    if sync is not None and not sync.get("connected"):
        return "uplink not connected"
    return None


def wait_healthy(status: Callable[[], dict[str, Any]], version: str, timeout: float,
                 since: datetime | None = None) -> tuple[str | None, dict[str, Any] | None]:
    """(None, status) once healthy; (why not, last status) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    why, last = "no answer on the control socket", None
    while True:
        try:
            last = status()
            why = healthy(last, version, since)
        except Exception as exc:  # noqa: BLE001 - the daemon not (yet) answering
            why = f"no status: {exc}"
        if why is None or time.monotonic() >= deadline:
            return why, last
        time.sleep(1.0)


def apply(bundle: Path, root: Path, keys_dir: Path, restart: Callable[[], None],
          status: Callable[[], dict[str, Any]], timeout: float) -> Outcome:
    """Install, switch, restart, check; roll back when the new version is not healthy in
    ``timeout`` seconds. UpdateError (nothing switched) when the bundle is refused."""
    # One update at a time (a technician's and the cloud's could meet).
    with open(root / ".update.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpdateError("another update is being applied now") from None
        return _apply(bundle, root, keys_dir, restart, status, timeout)


def _apply(bundle: Path, root: Path, keys_dir: Path, restart: Callable[[], None],
           status: Callable[[], dict[str, Any]], timeout: float) -> Outcome:
    try:
        manifest, running, _ = install(bundle, root, keys_dir)
    except UpdateError as exc:  # kept too: the daemon reports it to the cloud
        _record(root, Outcome("refused", None, None, None, str(exc), None, _now()))
        raise
    previous = os.readlink(root / "current")
    switch(root, f"releases/{manifest.version}")
    since = datetime.now(UTC)
    restart()
    why, health = wait_healthy(status, manifest.version, timeout, since)
    if why is None:
        out = Outcome("switched", manifest.version, running, manifest.version, None, health,
                      _now())
    else:
        switch(root, previous)
        since = datetime.now(UTC)
        restart()
        back, health = wait_healthy(status, running, timeout, since)
        out = Outcome("rolled_back", manifest.version, running, running,
                      f"{manifest.version} not healthy within {timeout:g} s: {why}"
                      + (f"; and {running} after the roll-back: {back}" if back else ""),
                      health, _now())
    _record(root, out)
    return out


def _record(root: Path, out: Outcome) -> None:
    tmp = root / (RESULT + ".tmp")
    tmp.write_text(json.dumps(out.to_dict(), indent=2) + "\n")
    os.replace(tmp, root / RESULT)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
