"""Where the cloud keeps its private keys: one directory, never on a command line.

``--keys DIR`` or ``SITEGATE_CLOUD_KEYS``; default ``/var/lib/sitegate-cloud/keys``. Files
(each part creates its own on first use, mode 0600):

- ``ca.key``, ``ca.crt``: the CA that signs gateway client certificates (enrolment);
- ``cloud.key``, ``cloud.crt``: the cloud's own client certificate for the broker, signed by
  ``cloud-ca.key``/``cloud-ca.crt`` (a CA for it alone: the broker's cloud listener trusts it);
- ``downlink.key``: the Ed25519 key that signs config, badge lists and commands;
  ``downlink.pub`` its public half, handed to gateways at enrolment.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

ENV = "SITEGATE_CLOUD_KEYS"
DEFAULT = Path("/var/lib/sitegate-cloud/keys")


def add_keys_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", metavar="DIR",
                        help=f"the cloud's key directory (default ${ENV} or {DEFAULT})")


def keys_dir(arg: str | None = None) -> Path:
    """The key directory, created (0700) if missing."""
    path = Path(arg or os.environ.get(ENV) or DEFAULT)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only, never briefly wider."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def downlink_key(directory: Path) -> Any:
    """The Ed25519 key that signs downlink (``downlink.key``); created with its public half
    ``downlink.pub`` (what gateways verify with) when the directory has none."""
    from sitegate.common import signing

    path = directory / "downlink.key"
    if not path.exists():
        key = signing.generate()
        write_private(path, signing.private_pem(key))
        (directory / "downlink.pub").write_bytes(signing.public_pem(key))
        return key
    key = signing.load_private(path)
    pub = directory / "downlink.pub"
    if not pub.exists():
        pub.write_bytes(signing.public_pem(key))
    return key
