"""What the console needs besides the database: where mail goes, and its public address."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class WebSettings:
    # the console's address as people reach it (links in mails); None: the request's own
    public_url: str | None = None
    smtp: tuple[str, int] | None = None  # None: no mail (reset links only via the CLI)
    mail_from: str = "sitegate@localhost"


def parse_smtp(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--smtp {value!r}: say HOST:PORT, e.g. 127.0.0.1:25")
    return host.strip("[]"), int(port)


def add_mail_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smtp", metavar="HOST:PORT",
                   help="mail server for invitations and password resets (no auth, "
                        "a local relay)")
    p.add_argument("--mail-from", default="sitegate@localhost", metavar="ADDRESS",
                   help="sender of those mails (default: sitegate@localhost)")
    p.add_argument("--public-url", metavar="URL",
                   help="the console's address as people reach it, for the links in mails "
                        "(e.g. https://console.example.ch)")


def from_args(args: argparse.Namespace) -> WebSettings:
    smtp = parse_smtp(args.smtp) if getattr(args, "smtp", None) else None
    url = getattr(args, "public_url", None)
    return WebSettings(public_url=url.rstrip("/") if url else None, smtp=smtp,
                       mail_from=getattr(args, "mail_from", None) or "sitegate@localhost")
