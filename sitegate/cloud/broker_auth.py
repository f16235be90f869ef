"""How a cloud command authenticates to the broker, one set of options for all of them
(push-config, push-badges, command, gateways revoke): on ``mqtts://`` the cloud's own
identity from the key directory, the one the shipped broker's cloud listener (8885) takes;
otherwise ``--username`` with a password from a file or the environment (never argv), or an
explicit CA and client certificate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sitegate.cloud.keys import add_keys_argument
from sitegate.cloud.secrets import add_password_arguments


def add_broker_options(p: argparse.ArgumentParser, keys: bool = True) -> None:
    if keys:
        add_keys_argument(p)
    p.add_argument("--username", help="broker user name")
    add_password_arguments(p)
    p.add_argument("--ca-file", help="CA certificate of the broker (mqtts://; default the "
                   "key directory's ca.crt)")
    p.add_argument("--cert-file", help="client certificate for the broker (mutual TLS; "
                   "default on mqtts://: the cloud's own, from the key directory)")
    p.add_argument("--key-file", help="its private key")


def cloud_identity(keys: Path) -> tuple[str, str] | None:
    """(cert, key) files of the cloud's identity in ``keys``: issued or renewed when the
    cloud CA's key is there; as found when only the certificate was copied to this host
    (the CA keys need not be on every host that runs a CLI); None when there is none."""
    if (keys / "ca.key").exists():
        from sitegate.cloud.auth.ca import CA

        key_path, cert_path = CA.open(keys).cloud_client()
        return str(cert_path), str(key_path)
    cert, key = keys / "cloud.crt", keys / "cloud.key"
    return (str(cert), str(key)) if cert.exists() and key.exists() else None


def broker_auth(args: argparse.Namespace) -> Any:
    """The BrokerAuth of the options; ValueError/OSError when unusable (SecretError is a
    ValueError)."""
    from sitegate.cloud.ingest.downlink import BrokerAuth
    from sitegate.cloud.keys import keys_dir
    from sitegate.cloud.secrets import broker_password

    keys = keys_dir(args.keys)
    ca_file, cert_file, key_file = args.ca_file, args.cert_file, args.key_file
    if args.broker.startswith("mqtts://") and cert_file is None and not args.username:
        ident = cloud_identity(keys)
        if ident is None:
            raise ValueError(f"no cloud identity in {keys} (cloud.crt, cloud.key): run "
                             "sitegate-cloud broker-config there, or copy them from the "
                             "cloud host, or give --cert-file/--key-file")
        cert_file, key_file = ident
        ca_file = ca_file or str(keys / "ca.crt")
    return BrokerAuth.from_options(args.username, broker_password(args), ca_file, cert_file,
                                   key_file)
