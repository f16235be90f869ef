"""The Debian package installs into a throwaway root with dpkg (its maintainer scripts run
chrootless, on $DPKG_ROOT), the unit verifies there, and upgrade, remove and purge keep or
drop what they should: state survives remove and upgrade; purge removes it (policy)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="dpkg --root installs files owned by root: needs root")


def dpkg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --force-depends: the root has no python3.11 or systemd packages of its own (the venv's
    # interpreter is the host's /usr/bin/python3.11, which the package depends on).
    res = subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless",
                          "--force-depends", "--log=/dev/null", *args],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def new_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    admin = root / "var" / "lib" / "dpkg"
    for d in ("info", "updates"):
        (admin / d).mkdir(parents=True)
    for f in ("status", "available"):
        (admin / f).touch()
    return root


def inside(root: Path, path: str, depth: int = 0) -> Path:
    """Where an absolute path of the installed system leads, resolved inside ``root``."""
    assert depth < 10, f"{path}: symlink loop"
    cur = root
    for part in Path(path.lstrip("/")).parts:
        cur = cur / part
        if cur.is_symlink():
            target = os.readlink(cur)
            if not target.startswith("/"):
                target = "/" + os.path.normpath((cur.parent / target).relative_to(root))
            cur = inside(root, target, depth + 1)
    return cur


@pytest.mark.timeout(900)  # the session's package build is part of the first test using it
def test_install_verify_upgrade_remove_purge(deb: Path, tmp_path: Path) -> None:
    root = new_root(tmp_path)
    dpkg(root, "-i", str(deb))

    # What the package installed: the venv, the switch symlink postinst made, the command,
    # the unit with its tmpfiles and sysusers, the default /etc/sitegate.
    assert os.readlink(root / "opt/sitegate/current") == "venv"
    assert os.readlink(root / "usr/bin/sitegate") == "/opt/sitegate/current/bin/sitegate"
    exe = inside(root, "/usr/bin/sitegate")
    assert exe == root / "opt/sitegate/venv/bin/sitegate" and os.access(exe, os.X_OK)
    assert exe.read_text().startswith("#!/opt/sitegate/venv/bin/python")
    for f in ("lib/systemd/system/sitegate.service", "lib/systemd/system/sitegate-update.path",
              "lib/systemd/system/sitegate-update.service", "usr/lib/tmpfiles.d/sitegate.conf",
              "usr/lib/sysusers.d/sitegate.conf", "etc/sitegate/site.toml.example"):
        assert (root / f).is_file(), f
    # The maintainer scripts ran on the root: sysusers made the user, tmpfiles its state dir.
    assert "sitegate:x:" in (root / "etc/passwd").read_text()
    state = root / "var/lib/sitegate"
    assert state.is_dir() and oct(state.stat().st_mode & 0o777) == "0o750"
    assert list((root / "opt/sitegate/venv/lib").glob("python3.11/site-packages/sitegate/"
                                                      "gateway/__pycache__/cli.*.pyc"))

    # The installed program runs, from its own venv, with no cloud library in it.
    py = root / "opt/sitegate/venv/bin/python"
    res = subprocess.run([str(py), "-m", "sitegate.gateway.cli", "check-config", "--json",
                          str(root / "etc/sitegate/site.toml.example")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and '"ok": true' in res.stdout, res.stdout + res.stderr
    res = subprocess.run([str(py), "-c", "import sqlalchemy"], capture_output=True, text=True)
    assert "No module named 'sqlalchemy'" in res.stderr

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit was not verified")
    verify_unit(root)

    # State and configuration of a running box...
    buffer = state / "buffer.db"
    with sqlite3.connect(buffer) as db:
        db.execute("create table t (x)")
        db.execute("insert into t values (42)")
    (root / "etc/sitegate/site.toml").write_text('gateway_id = "gw-1"\n')
    # ... and an update that was switched to (sitegate update apply):
    (root / "opt/sitegate/releases/0.0.9/bin").mkdir(parents=True)
    (root / "opt/sitegate/current").unlink()
    (root / "opt/sitegate/current").symlink_to("releases/0.0.9")
    (root / "opt/sitegate/last-update.json").write_text("{}")
    (root / "opt/sitegate/.update.lock").touch()

    # Upgrade (the same version again runs the same upgrade path of the scripts): the
    # package's venv runs again, state and configuration are as they were.
    dpkg(root, "-i", str(deb))
    assert os.readlink(root / "opt/sitegate/current") == "venv"
    assert _rows(buffer) == [(42,)]
    assert (root / "etc/sitegate/site.toml").read_text() == 'gateway_id = "gw-1"\n'

    # Remove: the software goes (the update's venv too), configuration and state stay.
    dpkg(root, "-r", "sitegate")
    assert not (root / "opt/sitegate").exists()
    assert not (root / "usr/bin/sitegate").is_symlink()
    assert not (root / "lib/systemd/system/sitegate.service").exists()
    assert _rows(buffer) == [(42,)]
    assert (root / "etc/sitegate/site.toml").exists()
    assert (root / "etc/sitegate/site.toml.example").exists()  # a conffile until purge

    # Purge: nothing of the package stays.
    dpkg(root, "-P", "sitegate")
    assert not (root / "etc/sitegate").exists()
    assert not state.exists()
    status = subprocess.run(["dpkg-query", f"--root={root}", "-W", "-f=${Status}",
                             "sitegate"], capture_output=True, text=True)
    assert "installed" not in status.stdout or "not-installed" in status.stdout


def verify_unit(root: Path) -> None:
    """systemd-analyze verify on the installed unit, inside the root: ExecStart's
    /usr/bin/sitegate must resolve there to an executable. The root gets the host's own
    systemd units (the targets the unit orders itself after), as a base system has them."""
    units = root / "lib/systemd/system"
    for unit in Path("/lib/systemd/system").iterdir():
        if not (units / unit.name).exists() and (unit.is_file() or unit.is_symlink()):
            shutil.copy2(unit, units / unit.name, follow_symlinks=False)
    res = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                          "/lib/systemd/system/sitegate.service",
                          "/lib/systemd/system/sitegate-update.path",
                          "/lib/systemd/system/sitegate-update.service"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "sitegate" not in res.stderr, res.stderr


def _rows(db: Path) -> list[tuple[int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select x from t").fetchall()
