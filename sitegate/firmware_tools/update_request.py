"""An update the cloud asks for (command ``update.apply`` with ``url`` and ``sha256``), and
its outcome reported back.

The daemon runs unprivileged and cannot write /opt/sitegate nor restart itself, so it only
fetches the bundle into ``<state dir>/updates/``, checks it (digest, signature, version:
a refused bundle is the command's error), and leaves a request file there. The
``sitegate-update.path`` unit sees the file and runs ``sitegate update apply --request``
as root, which installs, switches, checks health and rolls back as ``sitegate update
apply`` does, and writes the outcome to ``/opt/sitegate/last-update.json``. Whichever
version then runs reports that outcome once as an ``update`` event (events reach the cloud
like readings: buffered, at least once, idempotent).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitegate.common import release
from sitegate.firmware_tools.update import (
    DEFAULT_KEYS,
    DEFAULT_ROOT,
    RESULT,
    UpdateError,
    running_version,
    trusted_keys,
)

UPDATES = "updates"
REQUEST = "request.json"
BUNDLE = "bundle.tar"
REPORTED = "reported"
URL_RE = re.compile(r"^https?://[^\s]{1,2000}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def fetch(url: str, sha256: str, dest: Path, limit: int = release.MAX_BUNDLE_BYTES,
          timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` (at most ``limit`` bytes) and check its SHA-256."""
    if not URL_RE.match(url):
        raise UpdateError("url must be http(s)://...")
    if not SHA_RE.match(sha256):
        raise UpdateError("sha256 must be 64 lower-case hex digits")
    dest.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:  # noqa: S310 - http(s) only, checked above
            while chunk := resp.read(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise UpdateError(f"{url}: more than {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:  # URLError, timeouts, refused connections
        tmp.unlink(missing_ok=True)
        raise UpdateError(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}") from None
    if digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise UpdateError(f"{url}: SHA-256 {digest.hexdigest()} is not the one asked for")
    os.replace(tmp, dest)


def request(state: Path, args: dict[str, Any], root: Path = DEFAULT_ROOT,
            keys_dir: Path = DEFAULT_KEYS) -> dict[str, Any]:
    """The command: fetch, check, leave the request for the privileged unit."""
    updates = state / UPDATES
    bundle = updates / BUNDLE
    fetch(str(args.get("url", "")), str(args.get("sha256", "")), bundle)
    with tempfile.TemporaryDirectory(dir=updates) as tmp:
        try:
            manifest = release.read_bundle(bundle, trusted_keys(keys_dir), Path(tmp))
        except release.ReleaseError as exc:
            bundle.unlink(missing_ok=True)
            raise UpdateError(str(exc)) from None
    running = running_version(root)
    if release.version_key(manifest.version) <= release.version_key(running):
        bundle.unlink(missing_ok=True)
        raise UpdateError(f"version {manifest.version} is not newer than the running "
                          f"{running}: refused")
    req = {"bundle": str(bundle), "version": manifest.version,
           "requested": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp_req = updates / (REQUEST + ".tmp")
    tmp_req.write_text(json.dumps(req))
    os.replace(tmp_req, updates / REQUEST)  # the path unit starts on this rename
    return {"accepted": True, "version": manifest.version, "running": running,
            "note": "installing beside the running version; the outcome comes as an "
                    "'update' event"}


def take_request(path: Path) -> Path:
    """The bundle a request file names (inside its own directory only), the file deleted
    first so that the path unit does not start again for it."""
    try:
        req = json.loads(path.read_text()[:4096])
        bundle = Path(req["bundle"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UpdateError(f"{path}: not an update request ({exc})") from None
    finally:
        path.unlink(missing_ok=True)
    if bundle.parent.resolve() != path.parent.resolve():
        raise UpdateError(f"{path}: the bundle must lie beside the request")
    return bundle


def outcome_to_report(state: Path, root: Path = DEFAULT_ROOT) -> dict[str, Any] | None:
    """The last update's outcome if it was not reported yet (marked reported here)."""
    try:
        out = json.loads((root / RESULT).read_text()[:1 << 20])
    except (OSError, ValueError):
        return None
    mark = state / UPDATES / REPORTED
    stamp = f"{out.get('version')}@{out.get('at')}"
    try:
        if mark.read_text() == stamp:
            return None
    except OSError:
        pass
    mark.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    mark.write_text(stamp)
    return {k: out.get(k) for k in ("outcome", "version", "previous", "running", "reason",
                                    "at")}
