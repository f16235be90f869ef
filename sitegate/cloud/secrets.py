"""Secrets of the cloud's commands (the broker password) come from a file or the
environment, never from the command line: argv is readable by every local user (``ps``,
``/proc/PID/cmdline``) and ends up in shell histories."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

PASSWORD_ENV = "SITEGATE_MQTT_PASSWORD"
MAX_SECRET_BYTES = 4096


class SecretError(ValueError):
    """A secret that cannot be had as asked, said in one line."""


def add_password_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-file", metavar="FILE",
                   help=f"the broker password, first line of FILE (or ${PASSWORD_ENV})")
    # Kept only to refuse it with a reason instead of argparse's "unrecognized argument".
    p.add_argument("--password", help=argparse.SUPPRESS)


def broker_password(args: argparse.Namespace) -> str | None:
    """The broker password from ``--password-file`` or the environment (None: none given)."""
    if getattr(args, "password", None) is not None:
        raise SecretError("--password is no longer accepted: a password on the command line "
                          "is visible to every local user (ps). Use --password-file FILE or "
                          f"the environment variable {PASSWORD_ENV}")
    if args.password_file:
        return read_secret_file(Path(args.password_file))
    return os.environ.get(PASSWORD_ENV) or None


def read_secret_file(path: Path) -> str:
    """The first line of a small file (a trailing newline is not part of the secret)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretError(f"{path}: more than {MAX_SECRET_BYTES} bytes, not a password file")
    line = raw.decode("utf-8", "replace").splitlines()[0] if raw.strip() else ""
    if not line:
        raise SecretError(f"{path} is empty")
    return line


def db_url_problem(url: str) -> str | None:
    """A database URL must not carry its password (it is on the command line)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        return None  # a SQLite file path
    try:
        password = make_url(url).password
    except ArgumentError:
        return None  # not ours to judge here; opening it will say what is wrong
    if password:
        return ("the --db URL carries a password, readable by every local user (ps): leave "
                "it out and put it in PGPASSWORD or ~/.pgpass, which PostgreSQL's client reads")
    return None
