"""``sitegate-cloud tokens create|list|revoke|scopes``: API bearer tokens with scopes.

The token is printed once, at creation; the database keeps only its hash. Scopes and what
each allows: ``sitegate.cloud.auth.scopes`` (the same table the HTTP API checks).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from sitegate.cloud.auth.scopes import DESCRIPTIONS, OPERATIONS, Scope, parse_scopes
from sitegate.common.output import emit, table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("tokens", help="API tokens: create (shown once), list, revoke")
    ss = p.add_subparsers(dest="tokens_cmd", required=True)
    scopes = "; ".join(f"{s.value}: {DESCRIPTIONS[s]}" for s in Scope)
    q = ss.add_parser("create", help="a new API token with scopes (printed once)",
                      description=f"Scopes: {scopes}.")
    q.add_argument("--name", required=True, help="what or who uses it (e.g. accounting)")
    q.add_argument("--scope", action="append", required=True, metavar="SCOPE",
                   help=f"repeat or comma-separate: {', '.join(s.value for s in Scope)}")
    q.add_argument("--expires", metavar="WHEN",
                   help="90m, 24h, 30d, 2w or an ISO date (default: until revoked)")
    q.set_defaults(func=_create)
    q = ss.add_parser("list", help="tokens with scopes, expiry and state (never the token)")
    q.set_defaults(func=_list)
    q = ss.add_parser("revoke", help="revoke a token at once (by id, or by name)")
    q.add_argument("token", metavar="ID|NAME")
    q.set_defaults(func=_revoke)
    for q in (ss.choices["create"], ss.choices["list"], ss.choices["revoke"]):
        q.add_argument("--db", required=True, help="database URL or SQLite file path")
    q = ss.add_parser("scopes", help="the scopes and the operations each one allows")
    q.set_defaults(func=_scopes)
    for q in ss.choices.values():
        q.add_argument("--json", action="store_true", help="machine-readable output")


def _engine(url: str):  # type: ignore[no-untyped-def]
    from sitegate.cloud.secrets import db_url_problem
    from sitegate.cloud.store.db import make_engine, upgrade

    if problem := db_url_problem(url):
        raise ValueError(problem)
    upgrade(url)  # the tokens table may be the first thing an operator needs
    return make_engine(url)


def _fail(message: str) -> int:
    print(f"sitegate-cloud tokens: {message}", file=sys.stderr)
    return 2


def _create(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth import tokens

    now = datetime.now(UTC)
    try:
        scopes = parse_scopes(args.scope)
        expires = tokens.parse_expiry(args.expires, now) if args.expires else None
        secret, token = tokens.create(_engine(args.db), args.name, scopes, expires)
    except (ValueError, SQLAlchemyError) as exc:
        return _fail(_reason(exc))
    data = {**token.as_dict(now), "token": secret}
    emit(data, args.json,
         f"token {token.id} ({token.name}): {' '.join(sorted(token.scopes))}, "
         f"{'expires ' + _t(expires) if expires else 'until revoked'}\n\n{secret}\n\n"
         "Shown this once only: keep it in a secret store. Call the API (where "
         "sitegate-cloud serve --http listens) with\n"
         f"  curl -H 'Authorization: Bearer {secret}' http://127.0.0.1:8080/gateways")
    return 0


def _list(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth import tokens

    now = datetime.now(UTC)
    try:
        rows = [x.as_dict(now) for x in tokens.list_tokens(_engine(args.db))]
    except (ValueError, SQLAlchemyError) as exc:
        return _fail(_reason(exc))
    text = table([[r["id"], r["name"], " ".join(r["scopes"]), r["state"], _t(r["created_at"]),
                   _t(r["expires_at"]) or "-", _t(r["revoked_at"]) or "-"] for r in rows],
                 ["id", "name", "scopes", "state", "created", "expires", "revoked"]) \
        if rows else "no API tokens (sitegate-cloud tokens create)"
    emit(rows, args.json, text)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth import tokens

    try:
        token = tokens.revoke(_engine(args.db), args.token)
    except (ValueError, SQLAlchemyError) as exc:
        return _fail(_reason(exc))
    emit(token.as_dict(datetime.now(UTC)), args.json,
         f"token {token.id} ({token.name}) revoked: it is refused from now on")
    return 0


def _scopes(args: argparse.Namespace) -> int:
    rows = [{"scope": s.value, "allows": DESCRIPTIONS[s],
             "operations": sorted(op for op, need in OPERATIONS.items() if need == s)}
            for s in Scope]
    emit(rows, args.json, "\n\n".join(
        f"{r['scope']}: {r['allows']}\n  " + " ".join(r["operations"]) for r in rows))
    return 0


def _reason(exc: Exception) -> str:
    if isinstance(exc, SQLAlchemyError):  # field condition: say which database, no traceback
        return f"database unusable: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
    return str(exc)


def _t(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M UTC") if isinstance(v, datetime) else ""
