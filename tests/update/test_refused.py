"""Bundles that must not be installed are refused with one clear line, exit 2, before
anything is installed or switched: tampered, unsigned, signed by an untrusted key,
downgraded, for another interpreter."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sitegate.common import release, signing

ROOT = Path(__file__).resolve().parents[2]
OWN = signing.generate()


def install_root(tmp: Path) -> Path:
    """An install root whose current version is this checkout's venv (0.1.0)."""
    root = tmp / "opt"
    if not root.exists():
        root.mkdir()
        (root / "current").symlink_to(sys.prefix)
    return root


def bundle(tmp: Path, version: str = "0.2.0", key: signing.Ed25519PrivateKey = OWN,
           python: str = "cp311") -> Path:
    """A small signed bundle: refused before anything is installed, so its wheels need not
    install (their bytes are bound to the manifest all the same)."""
    wheels = {f"sitegate-{version}-py3-none-any.whl": b"PK\x03\x04 not really",
              "pyserial-3.5-py2.py3-none-any.whl": b"PK\x03\x04 nor this"}
    paths = {}
    for name, data in wheels.items():
        (tmp / name).write_bytes(data)
        paths[name] = tmp / name
    m = release.manifest_of(version, python, [f"sitegate=={version}", "pyserial==3.5"], wheels)
    out = tmp / f"sitegate-{version}.tar"
    release.write_bundle(out, release.sign(key, m), paths)
    return out


def apply(tmp: Path, b: Path) -> subprocess.CompletedProcess[str]:
    keys = tmp / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "release.pub").write_bytes(signing.public_pem(OWN))
    site = tmp / "site.toml"
    site.write_text(f'gateway_id = "gw"\n[health]\nsocket = "{tmp}/sg.sock"\n')
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "update", "apply",
                           str(b), "-c", str(site), "--root", str(install_root(tmp)),
                           "--trusted-keys", str(keys), "--restart", "false"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def rewrite(b: Path, change: dict[str, bytes]) -> None:
    with tarfile.open(b) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    files.update(change)
    with tarfile.open(b, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def refused(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("update refused: "), res.stderr
    return lines[0].removeprefix("update refused: ")


def test_tampered_wheel(tmp_path: Path) -> None:
    b = bundle(tmp_path)
    rewrite(b, {"wheels/pyserial-3.5-py2.py3-none-any.whl": b"PK\x03\x04 evil"})
    why = refused(apply(tmp_path, b))
    assert why == (f"{b}: pyserial-3.5-py2.py3-none-any.whl does not match the signed "
                   "manifest (tampered or damaged)")
    assert not (tmp_path / "opt" / "releases").exists()
    assert Path(str((tmp_path / "opt" / "current").readlink())) == Path(sys.prefix)


def test_tampered_manifest_and_smuggled_file(tmp_path: Path) -> None:
    b = bundle(tmp_path)
    with tarfile.open(b) as tar:
        env = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    env["signed"] = env["signed"].replace("pyserial==3.5", "pyserial==3.4")
    rewrite(b, {"manifest.json": json.dumps(env).encode()})
    assert refused(apply(tmp_path, b)) == ("bad signature: not signed by a release key this "
                                           "gateway trusts")
    b = bundle(tmp_path)
    rewrite(b, {"wheels/evil-1.0-py3-none-any.whl": b"PK"})
    assert "files not in the signed manifest ['wheels/evil-1.0-py3-none-any.whl']" in \
        refused(apply(tmp_path, b))


def test_unsigned_and_untrusted(tmp_path: Path) -> None:
    b = bundle(tmp_path)
    rewrite(b, {"manifest.json": b'{"version": "0.2.0"}'})
    assert refused(apply(tmp_path, b)) == "unsigned: the manifest carries no signature"
    b = bundle(tmp_path, key=signing.generate())
    assert refused(apply(tmp_path, b)).startswith("bad signature")


@pytest.mark.parametrize("version", ["0.1.0", "0.0.9"])
def test_downgrade_or_same_version(tmp_path: Path, version: str) -> None:
    why = refused(apply(tmp_path, bundle(tmp_path, version)))
    assert why == (f"version {version} is not newer than the running 0.1.0: a downgrade or "
                   "the same version is refused")


def test_other_interpreter_and_not_a_bundle(tmp_path: Path) -> None:
    assert refused(apply(tmp_path, bundle(tmp_path, python="cp313"))) == (
        "the bundle's wheels are for cp313, this gateway runs cp311")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"hello")
    assert "not an update bundle" in refused(apply(tmp_path, junk))
