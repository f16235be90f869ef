"""The HTTP side of ``sitegate-cloud serve``: where the API listens and which names it
answers to.

The API speaks plain HTTP. On a loopback address that is fine (a local proxy or the
operator's own machine); on any other address tokens would cross the network in clear, so
``--http`` there is refused unless ``--behind-tls-proxy`` says a TLS-terminating proxy is
in front. ``--allowed-host`` names the Host headers answered (others get 400), which stops
DNS rebinding: a page on attacker.example that resolves to 127.0.0.1 still sends its own
name.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def add_http_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http", metavar="HOST:PORT",
                   help="also serve the HTTP API here (loopback unless --behind-tls-proxy)")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a host name the API answers to (repeat; default: "
                        f"{', '.join(LOOPBACK_NAMES)}); any other Host header gets 400")
    p.add_argument("--behind-tls-proxy", action="store_true",
                   help="allow --http on a non-loopback address: a proxy in front of it "
                        "terminates TLS (the API itself speaks plain HTTP)")
    from sitegate.cloud.web.settings import add_mail_arguments

    add_mail_arguments(p)  # the web console's invitation and reset mails


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port); ValueError says what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--http {value!r}: say HOST:PORT, e.g. 127.0.0.1:8080")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def is_loopback(host: str) -> bool:
    """Only literal loopback addresses and ``localhost``: a name may resolve to anything."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_problem(args: argparse.Namespace) -> str | None:
    """Why ``serve`` must not start its HTTP API as asked, or None."""
    try:
        host, _ = parse_http(args.http)
    except ValueError as exc:
        return str(exc)
    if getattr(args, "smtp", None):
        from sitegate.cloud.web.settings import parse_smtp

        try:
            parse_smtp(args.smtp)
        except ValueError as exc:
            return str(exc)
    if not is_loopback(host) and not args.behind_tls_proxy:
        return (f"--http {args.http} is not a loopback address: API tokens would cross the "
                "network unencrypted. Listen on 127.0.0.1 behind a TLS proxy, or say "
                "--behind-tls-proxy if a proxy in front of this address terminates TLS")
    return None


def allowed_hosts(args: argparse.Namespace) -> Sequence[str]:
    return tuple(args.allowed_host or LOOPBACK_NAMES)


def run_http(args: argparse.Namespace) -> None:
    """Serve the API until stopped (``http_problem`` said yes first)."""
    import uvicorn

    from sitegate.cloud.api.app import create_app

    host, port = parse_http(args.http)
    if args.behind_tls_proxy and not args.allowed_host:
        print("sitegate-cloud serve: the API answers only the Host names "
              f"{', '.join(LOOPBACK_NAMES)}; if the proxy passes on the public name, list it "
              "with --allowed-host", file=sys.stderr)
    from sitegate.cloud.web.settings import from_args

    print(f"sitegate-cloud serve: web console at http://{args.http}/web/ "
          "(sitegate-cloud users add to let someone in)", file=sys.stderr)
    uvicorn.run(create_app(args.db, allowed_hosts(args), from_args(args),
                           keys=getattr(args, "keys", None)), host=host,
                port=port, log_level="warning")
