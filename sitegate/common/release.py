"""Update bundles: the contract between ``sitegate-cloud release sign`` (which makes and
signs one) and ``sitegate update apply`` (which checks it); plain data, no I/O beyond the
bundle file itself.

A bundle is an uncompressed tar (wheels are compressed already)::

    manifest.json        {"v": 1, "alg": "Ed25519", "signed": "<JSON text>", "sig": "<b64>"}
    wheels/<name>.whl    the project's wheel and every pinned dependency's

``signed`` holds ``{"version", "python", "requirements": [...], "wheels": {name: sha256}}``.
The signature is over a domain tag of its own plus that text (the Ed25519 keys and envelope
handling of ``common.signing``): a downlink signature can never pass for a release, nor
the other way round. Only the manifest is signed; every wheel is bound to it by its digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sitegate.common.signing import ALG, ENVELOPE_VERSION

DOMAIN = b"sitegate-release-v1\n"
MANIFEST = "manifest.json"
WHEELS = "wheels/"
# Bounds checked while reading (hostile input: a bundle comes over the network).
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 256 * 1024
MAX_MEMBERS = 400
WHEEL_RE = re.compile(r"^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-\d[A-Za-z0-9_]*)?"
                      r"-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl$")
VERSION_RE = re.compile(r"^\d+(\.\d+){0,3}$")
PIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*==[A-Za-z0-9_.!+-]+$")


class ReleaseError(ValueError):
    """A bundle that must not be installed; the text says why (one line)."""


@dataclass(frozen=True)
class Manifest:
    version: str
    python: str  # "cp311": the interpreter the wheels are for
    requirements: tuple[str, ...]  # exact pins, sitegate==version among them
    wheels: dict[str, str]  # file name -> SHA-256

    def body(self) -> dict[str, Any]:
        return {"version": self.version, "python": self.python,
                "requirements": list(self.requirements), "wheels": dict(self.wheels)}


def version_key(version: str) -> tuple[int, ...]:
    """Release versions are plain numbers (1.2.3): compared as such; ReleaseError else."""
    if not VERSION_RE.match(version):
        raise ReleaseError(f"version {version!r} is not N.N.N")
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (4 - len(parts))


def manifest_of(version: str, python: str, requirements: list[str],
                wheels: dict[str, bytes]) -> Manifest:
    return _checked(Manifest(version, python, tuple(requirements),
                             {n: hashlib.sha256(d).hexdigest()
                              for n, d in sorted(wheels.items())}))


def _checked(m: Manifest) -> Manifest:
    version_key(m.version)
    if f"sitegate=={m.version}" not in m.requirements:
        raise ReleaseError(f"the requirements do not pin sitegate=={m.version}")
    for pin in m.requirements:
        if not PIN_RE.match(pin):
            raise ReleaseError(f"requirement {pin!r} is not an exact pin (name==version)")
    for name in m.wheels:  # names become file names: no paths
        if not WHEEL_RE.match(name):
            raise ReleaseError(f"{name!r} is not a wheel file name")
    if not re.fullmatch(r"cp3\d+", m.python):
        raise ReleaseError(f"python {m.python!r} is not cp3N")
    return m


def sign(key: Ed25519PrivateKey, manifest: Manifest) -> bytes:
    text = json.dumps(manifest.body(), sort_keys=True, separators=(",", ":"))
    sig = key.sign(DOMAIN + text.encode())
    return json.dumps({"v": ENVELOPE_VERSION, "alg": ALG, "signed": text,
                       "sig": base64.b64encode(sig).decode()}, indent=1).encode()


def write_bundle(out: Path, signed_manifest: bytes, wheels: dict[str, Path]) -> None:
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, signed_manifest)
        for name, path in sorted(wheels.items()):
            _add(tar, WHEELS + name, path.read_bytes())
    tmp.replace(out)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def verify_manifest(payload: bytes, keys: list[Ed25519PublicKey]) -> Manifest:
    """The manifest if one of ``keys`` signed it; ReleaseError saying why not."""
    if len(payload) > MAX_MANIFEST_BYTES:
        raise ReleaseError(f"manifest of {len(payload)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        env = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ReleaseError("unsigned: the manifest is not a signature envelope") from None
    if not isinstance(env, dict) or not isinstance(env.get("signed"), str) \
            or not isinstance(env.get("sig"), str):
        raise ReleaseError("unsigned: the manifest carries no signature")
    if env.get("v") != ENVELOPE_VERSION or env.get("alg") != ALG:
        raise ReleaseError(f"signature envelope v{env.get('v')!r} {env.get('alg')!r} is not "
                           f"v{ENVELOPE_VERSION} {ALG}")
    try:
        sig = base64.b64decode(env["sig"], validate=True)
    except (binascii.Error, ValueError):
        raise ReleaseError("the signature is not base64") from None
    text = env["signed"].encode()
    if not keys:
        raise ReleaseError("no trusted release key on this gateway: nothing can be verified")
    for key in keys:
        try:
            key.verify(sig, DOMAIN + text)
            break
        except InvalidSignature:
            continue
    else:
        raise ReleaseError("bad signature: not signed by a release key this gateway trusts")
    try:
        body = json.loads(text)
        m = Manifest(str(body["version"]), str(body["python"]),
                     tuple(str(r) for r in body["requirements"]),
                     {str(k): str(v) for k, v in body["wheels"].items()})
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReleaseError(f"signed manifest unreadable: {exc}") from None
    return _checked(m)


def read_bundle(path: Path, keys: list[Ed25519PublicKey], into: Path) -> Manifest:
    """Check a bundle whole and extract its wheels into ``into``: the signed manifest first,
    then every wheel against its digest, nothing more and nothing less."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReleaseError(f"{path}: {exc.strerror or exc}") from None
    if size > MAX_BUNDLE_BYTES:
        raise ReleaseError(f"{path}: {size} bytes, more than {MAX_BUNDLE_BYTES}")
    try:
        with tarfile.open(path, "r:") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise ReleaseError(f"{path}: more than {MAX_MEMBERS} files")
            by_name = {m.name: m for m in members}
            if MANIFEST not in by_name:
                raise ReleaseError(f"{path}: no {MANIFEST}: unsigned, or not an update bundle")
            manifest = verify_manifest(_member(tar, by_name[MANIFEST], MAX_MANIFEST_BYTES),
                                       keys)
            expected = {WHEELS + n for n in manifest.wheels} | {MANIFEST}
            if set(by_name) != expected:
                extra = sorted(set(by_name) - expected)
                missing = sorted(expected - set(by_name))
                raise ReleaseError(f"{path}: files not in the signed manifest {extra[:5]}"
                                   if extra else f"{path}: missing {missing[:5]}")
            into.mkdir(parents=True, exist_ok=True)
            for name, digest in manifest.wheels.items():
                data = _member(tar, by_name[WHEELS + name], MAX_BUNDLE_BYTES)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ReleaseError(f"{path}: {name} does not match the signed manifest "
                                       "(tampered or damaged)")
                (into / name).write_bytes(data)
    except (tarfile.TarError, EOFError) as exc:
        raise ReleaseError(f"{path}: not an update bundle (tar): {exc}") from None
    return manifest


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if not member.isfile():
        raise ReleaseError(f"{member.name}: not a regular file")
    if member.size > limit:
        raise ReleaseError(f"{member.name}: {member.size} bytes, more than {limit}")
    f: IO[bytes] | None = tar.extractfile(member)
    assert f is not None
    return f.read()
