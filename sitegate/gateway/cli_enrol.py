"""``sitegate enrol``: get the gateway's certificate from the cloud with a claim token (or
renew it), so that it can speak mutual TLS with the broker."""

from __future__ import annotations

import argparse
import sys

from sitegate.common.output import emit
from sitegate.gateway.cli_core import DEFAULT_CONFIG, config_or_exit

EXIT_REFUSED = 1
EXIT_CONFIG = 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("enrol", help="enrol this gateway with a claim token (or renew)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--claim", metavar="TOKEN", help="the token from sitegate-cloud "
                     "gateways claim-token ('-' reads it from standard input)")
    how.add_argument("--renew", action="store_true", help="renew the certificate now")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--broker", help="the provisioning listener, mqtts://host:port (default: "
                   "[mqtt] provision_broker, else the broker's host on port 8884)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the cloud")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_enrol)


def cmd_enrol(args: argparse.Namespace) -> int:
    from sitegate.firmware_tools.enrol import EnrolError, enrol, provision_url, renew
    from sitegate.firmware_tools.identity import Identity, IdentityError, state_dir

    cfg = config_or_exit(args.config)
    if cfg.mqtt is None:
        print(f"{args.config}: no [mqtt] table: nothing to enrol with", file=sys.stderr)
        return EXIT_CONFIG
    identity = Identity.of_state(state_dir(cfg.storage.path))
    url = args.broker or provision_url(cfg.mqtt)
    try:
        if args.renew:
            if not identity.enrolled():
                print("not enrolled yet: use --claim TOKEN", file=sys.stderr)
                return EXIT_REFUSED
            cert = renew(identity, cfg.gateway_id, url, args.timeout)
        else:
            token = sys.stdin.readline() if args.claim == "-" else args.claim
            cert = enrol(identity, cfg.gateway_id, token.strip(), url, args.timeout)
    except (EnrolError, IdentityError, OSError) as exc:
        print(f"enrolment failed: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    data = {"gateway_id": cfg.gateway_id, "identity": str(identity.dir),
            "not_after": cert.not_valid_after_utc.isoformat(), "serial": cert.serial_number}
    emit(data, args.json, f"enrolled {cfg.gateway_id}: certificate in {identity.dir}, valid "
         f"until {data['not_after']}")
    return 0
