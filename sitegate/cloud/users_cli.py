"""``sitegate-cloud users add|invite|list|disable``: people of the web console.

A user has roles per site (operator, owner, installer, tenant of a billing account); each
role is a set of the API's scopes (``sitegate.cloud.auth.users.ROLE_SCOPES``). No password
crosses the command line: ``add`` prints a one-time link to set it (or reads it from stdin
with ``--password-stdin``), ``invite`` mails that link.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import SQLAlchemyError

from sitegate.common.output import emit, table

DEFAULT_URL = "http://127.0.0.1:8080"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("users", help="web console users: add, invite (by mail), list, disable")
    ss = p.add_subparsers(dest="users_cmd", required=True)
    for name, text in (("add", "a user with a role on a site; prints a one-time link to set "
                                "the password"),
                       ("invite", "like add, and mails the one-time link (platform access "
                                  "for a contact)")):
        q = ss.add_parser(name, help=text)
        q.add_argument("email")
        q.add_argument("--name", required=True, help="the person's name, as shown and greeted")
        q.add_argument("--role", required=True,
                       choices=("operator", "owner", "installer", "tenant"))
        q.add_argument("--site", required=True,
                       help="the site id (operators: * for every site)")
        q.add_argument("--account", help="tenant: their billing account in the site model")
        q.add_argument("--language", default="en", choices=("en", "de"))
        q.add_argument("--url", default=DEFAULT_URL,
                       help=f"the console's address for the link (default {DEFAULT_URL})")
    add = ss.choices["add"]
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of printing a link")
    add.set_defaults(func=_add)
    inv = ss.choices["invite"]
    inv.add_argument("--smtp", required=True, metavar="HOST:PORT", help="mail server")
    inv.add_argument("--mail-from", default="sitegate@localhost", metavar="ADDRESS")
    inv.set_defaults(func=_invite)
    q = ss.add_parser("list", help="users with their roles (never a password)")
    q.set_defaults(func=_list)
    q = ss.add_parser("disable", help="disable a user and end their sessions at once")
    q.add_argument("email")
    q.set_defaults(func=_disable)
    for q in ss.choices.values():
        q.add_argument("--db", required=True, help="database URL or SQLite file path")
        q.add_argument("--json", action="store_true", help="machine-readable output")


def _engine(url: str):  # type: ignore[no-untyped-def]
    from sitegate.cloud.secrets import db_url_problem
    from sitegate.cloud.store.db import make_engine, upgrade

    if problem := db_url_problem(url):
        raise ValueError(problem)
    upgrade(url)  # the first operator may be the first thing a new database holds
    return make_engine(url)


def _fail(message: str) -> int:
    print(f"sitegate-cloud users: {message}", file=sys.stderr)
    return 2


def _reason(exc: Exception) -> str:
    if isinstance(exc, SQLAlchemyError):
        return f"database unusable: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}"
    return str(exc)


def _make(args: argparse.Namespace, password: str | None) -> tuple[int, str | None]:
    from sitegate.cloud.auth import users

    role = users.check_role(args.role, args.site, args.account)
    engine = _engine(args.db)
    uid = users.add_user(engine, args.email, args.name, role, args.language, password)
    token = None if password is not None else users.make_link(engine, args.email, "invite")
    return uid, token


def _link(args: argparse.Namespace, token: str) -> str:
    return f"{args.url.rstrip('/')}/web/link/{token}"


def _add(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    try:
        uid, token = _make(args, password)
    except (ValueError, SQLAlchemyError) as exc:
        return _fail(_reason(exc))
    role = f"{args.role}@{args.site}" + (f":{args.account}" if args.account else "")
    data = {"id": uid, "email": args.email.strip().lower(), "role": role,
            "link": _link(args, token) if token else None}
    emit(data, args.json, f"user {data['email']} ({role})" + (
        f": set the password once, within 7 days, at\n  {data['link']}" if token else
        ": password set"))
    return 0


def _invite(args: argparse.Namespace) -> int:
    from sitegate.cloud.web.mail import MailError, link_mail, send
    from sitegate.cloud.web.settings import WebSettings, parse_smtp

    try:
        settings = WebSettings(smtp=parse_smtp(args.smtp), mail_from=args.mail_from)
        uid, token = _make(args, None)
        assert token is not None
        send(settings, link_mail(settings, args.email.strip().lower(), args.name,
                                 args.language, "invite", _link(args, token)))
    except MailError as exc:  # a field condition: the user exists, the mail did not go
        print(f"sitegate-cloud users: {exc}; the user exists: run invite again once the "
              "mail server answers", file=sys.stderr)
        return 1
    except (ValueError, SQLAlchemyError) as exc:
        return _fail(_reason(exc))
    emit({"id": uid, "email": args.email.strip().lower(), "mailed": True}, args.json,
         f"invitation mailed to {args.email.strip().lower()} (one-time link, 7 days)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth import users

    try:
        rows = users.list_users(_engine(args.db))
    except (ValueError, SQLAlchemyError) as exc:
        return _fail(_reason(exc))
    text = table([[r["id"], r["email"], r["name"], " ".join(r["roles"]),  # type: ignore[arg-type]
                   "disabled" if r["disabled"] else ("active" if r["password_set"]
                                                     else "invited")] for r in rows],
                 ["id", "email", "name", "roles", "state"]) if rows else \
        "no users (sitegate-cloud users add)"
    emit(rows, args.json, text)
    return 0


def _disable(args: argparse.Namespace) -> int:
    from sitegate.cloud.auth import users

    try:
        uid = users.disable(_engine(args.db), args.email)
    except (ValueError, SQLAlchemyError) as exc:
        return _fail(_reason(exc))
    emit({"id": uid, "email": args.email.strip().lower(), "disabled": True}, args.json,
         f"user {args.email.strip().lower()} disabled: their sessions ended, logins refused")
    return 0
