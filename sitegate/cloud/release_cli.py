"""``sitegate-cloud release sign``: an update bundle for gateways, from a wheelhouse
(packaging/build-wheelhouse: the project's wheel and its pinned dependencies as wheels),
with its manifest signed by the release key (``release.key`` in the cloud's key directory,
made on first use with ``release.pub``: the key gateways trust, in
/etc/sitegate/release-keys/)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from sitegate.cloud.keys import add_keys_argument, keys_dir, write_private
from sitegate.common import release, signing
from sitegate.common.output import emit

EXIT_PROBLEM = 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = sub.add_parser("release", help="signed update bundles for gateways")
    rsub = top.add_subparsers(dest="release_command", metavar="COMMAND")
    rsub.required = True
    p = rsub.add_parser("sign", help="make and sign an update bundle from a wheelhouse")
    p.add_argument("--wheelhouse", required=True, type=Path, metavar="DIR",
                   help="packaging/build-wheelhouse's output (with its requirements.txt)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument("--python", default="cp311", help="the gateways' interpreter (cp311)")
    add_keys_argument(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sign)


def release_key(directory: Path) -> signing.Ed25519PrivateKey:
    """``release.key``, made with ``release.pub`` when the directory has none. Its own key,
    not the downlink key: it can be kept offline, and it signs for every gateway."""
    path = directory / "release.key"
    if not path.exists():
        key = signing.generate()
        write_private(path, signing.private_pem(key))
        (directory / "release.pub").write_bytes(signing.public_pem(key))
        return key
    return signing.load_private(path)


def cmd_sign(args: argparse.Namespace) -> int:
    reqs_file = args.wheelhouse / "requirements.txt"
    try:
        reqs = [ln.strip() for ln in reqs_file.read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
        wheels = {p.name: p for p in sorted(args.wheelhouse.glob("*.whl"))}
        own = [n for n in wheels if re.match(r"sitegate-[^-]+-py3-none-any\.whl$", n)]
        if len(own) != 1:
            raise release.ReleaseError(f"{args.wheelhouse}: {len(own)} sitegate wheels, "
                                       "expected one")
        version = own[0].split("-")[1]
        manifest = release.manifest_of(version, args.python, reqs,
                                       {n: p.read_bytes() for n, p in wheels.items()})
        key = release_key(keys_dir(args.keys))
        release.write_bundle(args.out, release.sign(key, manifest), wheels)
    except release.ReleaseError as exc:
        print(f"release sign: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except (OSError, ValueError) as exc:
        print(f"release sign: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    emit({"bundle": str(args.out), "version": version, "wheels": len(wheels),
          "bytes": args.out.stat().st_size}, args.json,
         f"{args.out}: sitegate {version}, {len(wheels)} wheels, signed")
    return 0
