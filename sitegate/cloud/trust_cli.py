"""``sitegate-cloud gateways [list|claim-token|revoke]`` and ``sitegate-cloud
broker-config``: enrolment of gateways and the broker that enforces who they are."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sitegate.cloud.keys import add_keys_argument
from sitegate.common.output import emit, table

EXIT_REFUSED = 1
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = sub.add_parser("gateways", help="gateways: registry, claim tokens, revocation")
    _common(g, None)
    gsub = g.add_subparsers(dest="gateways_command", metavar="COMMAND")
    g.set_defaults(func=_list)

    p = gsub.add_parser("list", help="gateways: enrolment, online, last seen, acked marks")
    _common(p, argparse.SUPPRESS)
    p.set_defaults(func=_list)

    p = gsub.add_parser("claim-token", help="one-time tokens to enrol a gateway of a site: "
                        "create (the default), list, revoke ID")
    _common(p, argparse.SUPPRESS)
    p.add_argument("action", nargs="?", choices=("create", "list", "revoke"), default="create")
    p.add_argument("token_id", nargs="?", metavar="ID", help="revoke: the id `list` shows")
    p.add_argument("--site", help="create: the site the gateway will belong to")
    p.add_argument("--expires", default="24h", help="create: valid for (e.g. 30m, 24h, 7d; "
                   "max 30d)")
    add_keys_argument(p)
    p.set_defaults(func=_claim_token)

    p = gsub.add_parser("revoke", help="shut a gateway out (rewrites the CRL)")
    _common(p, argparse.SUPPRESS)
    p.add_argument("gateway")
    p.add_argument("--crl", action="append", default=[], metavar="FILE",
                   help="also write the CRL here (the broker's crlfile); then reload the "
                        "broker (SIGHUP)")
    p.add_argument("--broker", metavar="URL",
                   help="cut the gateway's open connection too: the broker's cloud listener, "
                        "mqtts://host[:8885] (serve cuts it again if it comes back before the "
                        "reload)")
    add_keys_argument(p)
    from sitegate.cloud.broker_auth import add_broker_options

    add_broker_options(p, keys=False)
    p.set_defaults(func=_revoke)

    p = sub.add_parser("broker-config", help="write the Mosquitto configuration, certificates "
                       "and ACLs sitegate expects")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--host", action="append", metavar="NAME",
                   help="name or address gateways use for the broker (repeatable; default "
                        "localhost and 127.0.0.1)")
    p.add_argument("--dir", help="where the broker will read the files (default: --out)")
    p.add_argument("--port", type=int, default=8883, help="mutual TLS listener")
    p.add_argument("--provision-port", type=int, default=8884,
                   help="the enrolment broker's listener (a Mosquitto of its own)")
    p.add_argument("--cloud-port", type=int, default=8885,
                   help="the cloud's listener (mutual TLS, cloud CA only)")
    p.add_argument("--bind", help="address the listeners bind to (default: all)")
    p.add_argument("--bridge-host", metavar="NAME",
                   help="where the enrolment broker reaches the cloud listener (a --host "
                        "name; default: the first, or 127.0.0.1 without --host)")
    p.add_argument("--user", help="user mosquitto runs as (its 'user' option)")
    p.add_argument("--data", default="/var/lib/mosquitto/",
                   help="mosquitto's persistence directory (sessions, queued downlink)")
    p.add_argument("--json", action="store_true")
    add_keys_argument(p)
    p.set_defaults(func=_broker_config)


def _common(p: argparse.ArgumentParser, default: Any) -> None:
    # Subcommands suppress their defaults so that `gateways --db X list` keeps the X.
    p.add_argument("--db", default=default, help="database URL or SQLite file path")
    p.add_argument("--json", action="store_true", default=default or False,
                   help="machine-readable output")
    p.add_argument("--limit", type=int, default=default or 100)


def _db(args: argparse.Namespace) -> str:
    if not getattr(args, "db", None):
        print("sitegate-cloud gateways: --db is required", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return args.db


def _engine(db: str):  # type: ignore[no-untyped-def]
    from sitegate.cloud.store.db import open_db

    return open_db(db)  # NotReady (missing, unmigrated): the CLI says what to run


def _list(args: argparse.Namespace) -> int:
    from sitegate.cloud.api.app import gateways
    from sitegate.cloud.auth.enrolment import identities

    engine = _engine(_db(args))
    seen = {g["gateway_id"]: g for g in gateways(engine)}
    ids = identities(engine)
    rows = []
    for gw in sorted(set(seen) | set(ids)):
        s, i = seen.get(gw, {}), ids.get(gw)
        rows.append({**s, "gateway_id": gw, "site_id": i and i["site_id"],
                     "enrolment": ("revoked" if i["revoked_at"] else "enrolled") if i
                     else "not enrolled", "enrolled_at": i and i["enrolled_at"],
                     "revoked_at": i and i["revoked_at"],
                     "cert_not_after": i and i["cert_not_after"]})
    rows = rows[: args.limit]
    text = table(
        [[r["gateway_id"], r["site_id"] or "", r["enrolment"], _t(r["cert_not_after"]),
          ("online" if r.get("online") else "offline") if "online" in r else "never seen",
          _t(r.get("last_seen")),
          " ".join(f"{k}={v}" for k, v in sorted((r.get("acked_upto") or {}).items()))]
         for r in rows],
        ["gateway", "site", "enrolment", "cert until", "state", "last seen", "acked up to"],
    ) if rows else "no gateways yet"
    emit(rows, args.json, text)
    return 0


def _claim_token(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth.ca import CA, CAError
    from sitegate.cloud.auth.enrolment import (
        EnrolmentError,
        claim_tokens,
        create_claim_token,
        parse_duration,
        revoke_claim_token,
    )
    from sitegate.cloud.keys import keys_dir

    if args.action == "list":
        rows = claim_tokens(_engine(_db(args)), args.limit)
        emit(rows, args.json, table(
            [[r["id"], r["site_id"], r["state"], _t(r["created_at"]), _t(r["expires_at"]),
              r["used_by"] or ""] for r in rows],
            ["id", "site", "state", "created", "expires", "used by"]) if rows
            else "no claim tokens")
        return 0
    if args.action == "revoke":
        if not args.token_id:
            print("claim-token revoke: which one? give its ID (claim-token list)",
                  file=sys.stderr)
            return EXIT_USAGE
        try:
            row = revoke_claim_token(_engine(_db(args)), args.token_id)
        except (EnrolmentError, LookupError) as exc:
            print(f"not revoked: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        emit(row, args.json, f"claim token {row['id']} (site {row['site_id']}) revoked: "
             "nobody can enrol with it")
        return 0
    if not args.site:
        print("claim-token: --site is required to create one", file=sys.stderr)
        return EXIT_USAGE
    try:
        new = create_claim_token(_engine(_db(args)), CA.open(keys_dir(args.keys)), args.site,
                                 parse_duration(args.expires))
    except (ValueError, CAError, EnrolmentError) as exc:
        print(f"no token: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    until = new.expires_at.astimezone()
    emit({"token": new.token, "id": new.id, "site_id": new.site_id,
          "expires_at": until.isoformat()}, args.json,
         f"{new.token}\n(id {new.id}: single use, site {new.site_id}, valid until "
         f"{until:%Y-%m-%d %H:%M %Z}; shown once: on the gateway run `sitegate enrol --claim "
         "TOKEN` or put it in <state dir>/claim-token)")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth.ca import CA
    from sitegate.cloud.auth.enrolment import EnrolmentError, revoke
    from sitegate.cloud.keys import keys_dir

    try:
        n = revoke(_engine(_db(args)), CA.open(keys_dir(args.keys)), args.gateway,
                   [Path(c) for c in args.crl])
    except (EnrolmentError, OSError) as exc:
        print(f"not revoked: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    cut = None
    if args.broker:
        from sitegate.cloud.auth.revocation import kick
        from sitegate.cloud.broker_auth import broker_auth

        try:
            kick(args.broker, broker_auth(args), args.gateway)
            cut = True
        except (OSError, ValueError) as exc:
            # Revoked all the same: serve cuts the connection at its next message.
            print(f"revoked, but its connection was not cut: {exc}", file=sys.stderr)
            cut = False
    emit({"gateway_id": args.gateway, "certificates_revoked": n, "crl": args.crl,
          "connection_cut": cut}, args.json,
         f"{args.gateway} revoked ({n} certificate(s))"
         + ("; its open connection was cut" if cut else "")
         + "; reload the broker (SIGHUP) so that it reads the new CRL")
    return 0 if cut is not False else EXIT_REFUSED


def _broker_config(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth import broker_config as bc
    from sitegate.cloud.auth.ca import CA
    from sitegate.cloud.keys import keys_dir

    out = Path(args.out)
    ca = CA.open(keys_dir(args.keys))
    hosts = args.host or ["localhost", "127.0.0.1"]
    key_file, cert_file = ca.broker_server(hosts)
    ca.cloud_client()  # the cloud's identity, made now so the operator sees it exists
    bridge_key, bridge_cert = ca.enrolment_bridge()
    bridge_host = args.bridge_host or (hosts[0] if args.host else "127.0.0.1")
    if bridge_host not in hosts:
        print(f"broker-config: --bridge-host {bridge_host} is not a --host name: the bridge "
              "checks the broker's certificate against it", file=sys.stderr)
        return EXIT_USAGE
    crl = ca.dir / "crl.pem"
    if not crl.exists():
        crl.write_bytes(ca.crl([]))
    settings = bc.BrokerSettings(dir=args.dir or str(out.resolve()), port=args.port,
                                 provision_port=args.provision_port,
                                 cloud_port=args.cloud_port, bind=args.bind,
                                 user=args.user, data=args.data, bridge_host=bridge_host)
    files: dict[str, str | bytes] = {**bc.config_files(settings), "ca.crt": ca.pem,
                                     "cloud-ca.crt": ca.cloud_ca().pem,
                                     "broker.crt": cert_file.read_bytes(),
                                     "broker.key": key_file.read_bytes(),
                                     "crl.pem": crl.read_bytes(),
                                     "enrolment-bridge.crt": bridge_cert.read_bytes(),
                                     "enrolment-bridge.key": bridge_key.read_bytes()}
    bc.write(out, files, private={"broker.key", "enrolment-bridge.key"})
    emit({"out": str(out), "files": sorted(files), "hosts": hosts, "pin": ca.broker_pin()},
         args.json, f"broker configuration in {out}: {', '.join(sorted(files))}\n"
         f"run: mosquitto -c {Path(settings.dir) / 'mosquitto.conf'}\n"
         f"and the enrolment broker: mosquitto -c {Path(settings.dir) / 'enrolment.conf'}")
    return 0


def _t(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime) else str(v or "")
