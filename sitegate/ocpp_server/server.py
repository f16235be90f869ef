"""The WebSocket side: ``ws(s)://host:port/ocpp/{charge_point_id}``.

The handshake decides who gets in (path, known charger, HTTP basic auth for security
profiles 1 and 2) and which OCPP version is spoken (subprotocol; none offered means 1.6).
"""

from __future__ import annotations

import hmac
import http
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic
from websockets.http11 import Request, Response

from sitegate.common.sitefile_ocpp import OcppConfig
from sitegate.ocpp_server.limits import (
    IDENTITY_MAX,
    Admission,
    QuietLibraryLog,
    Throttle,
    valid_identity,
)

log = structlog.get_logger(__name__)

PREFIX = "/ocpp/"
SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
VERSION = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", None: "1.6"}


def charge_point_id(path: str) -> str | None:
    """The identity in ``/ocpp/{id}`` if it follows the OCPP 2.0.1 identifier rules."""
    path = path.split("?", 1)[0]
    if not path.startswith(PREFIX) or len(path) > len(PREFIX) + 3 * IDENTITY_MAX + 1:
        return None
    cp_id = unquote(path[len(PREFIX):], errors="strict").removesuffix("/")
    return cp_id if valid_identity(cp_id) else None


def _select_subprotocol(conn: ServerConnection, offered: Any) -> str | None:
    for proto in SUBPROTOCOLS:  # our preference order
        if proto in offered:
            return proto
    # No subprotocol (old 1.6 firmware) or only ones we do not speak: answer as 1.6 without
    # a subprotocol header; a charger speaking something else will fail on its first message.
    return None


class Gate:
    """The handshake: path and identity, known charger, credentials, connection caps.

    Every refusal is counted; the log gets one line per kind and interval with the count
    and the last peer, so 500 attempts a second cost nothing but a counter."""

    def __init__(self, cfg: OcppConfig) -> None:
        self.cfg = cfg
        lim = cfg.limits
        self.admission = Admission(lim.max_connections, lim.max_pending,
                                   lim.max_pending_per_address)
        self.refusals = Throttle(lim.log_interval)

    def _refuse(self, conn: ServerConnection, status: http.HTTPStatus, kind: str,
                body: str, **fields: Any) -> Response:
        n = self.refusals.due(kind)
        if n:
            log.warning("ocpp.refused", kind=kind, count_since_last=n,
                        peer=_address(conn), **fields)
        return conn.respond(status, body + "\n")

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            cp_id = charge_point_id(request.path)
        except UnicodeDecodeError:
            cp_id = None
        if cp_id is None:
            return self._refuse(conn, http.HTTPStatus.NOT_FOUND, "bad_identity",
                                "expected /ocpp/{charge_point_id} (OCPP identifierString, "
                                f"at most {IDENTITY_MAX} characters)",
                                path=request.path[:80])
        known = self.cfg.charge_point(cp_id)
        if known is None and self.cfg.security.unknown_chargers == "reject":
            return self._refuse(conn, http.HTTPStatus.NOT_FOUND, "unknown_charger",
                                "unknown charge point", charge_point=cp_id)
        if self.cfg.security.profile >= 1 and known is not None:
            denied = _check_basic(request.headers, cp_id, known.password)
            if denied is not None:
                response = self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, "auth", denied,
                                        charge_point=cp_id, why=denied)
                response.headers["WWW-Authenticate"] = build_www_authenticate_basic("sitegate")
                return response
        full = self.admission.refuse(conn, _address(conn), known is not None)
        if full is not None:
            return self._refuse(conn, http.HTTPStatus.SERVICE_UNAVAILABLE, f"full_{full}",
                                "too many connections", charge_point=cp_id)
        return None


def _address(conn: ServerConnection) -> str:
    peer = conn.remote_address
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def _check_basic(headers: Headers, cp_id: str, password: str | None) -> str | None:
    """Why the credentials do not prove ``cp_id`` (missing, unsupported, invalid), or None."""
    try:
        user, given = parse_authorization_basic(headers["Authorization"])
    except KeyError:
        return "missing credentials"
    except InvalidHeader:
        return "unsupported credentials"
    # OCPP security profiles: the user name is the charge point id.
    ok = password is not None and user == cp_id and hmac.compare_digest(
        given.encode(), password.encode())
    return None if ok else "invalid credentials"


def tls_context(cfg: OcppConfig) -> ssl.SSLContext | None:
    if cfg.security.profile != 2:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP security whitepaper: TLS 1.2 or newer
    assert cfg.security.certfile and cfg.security.keyfile
    ctx.load_cert_chain(cfg.security.certfile, cfg.security.keyfile)
    return ctx


def _quiet_library_log() -> None:
    lib = logging.getLogger("ocpp")
    if not any(isinstance(f, QuietLibraryLog) for f in lib.filters):
        lib.addFilter(QuietLibraryLog())


async def start_server(cfg: OcppConfig,
                       handler: Callable[[ServerConnection, str, str], Awaitable[None]],
                       gate: Gate | None = None) -> Server:
    async def on_connect(ws: ServerConnection) -> None:
        cp_id = charge_point_id(ws.request.path if ws.request else "")
        assert cp_id is not None  # process_request let only valid paths through
        await handler(ws, cp_id, VERSION.get(ws.subprotocol, "1.6"))

    _quiet_library_log()
    return await serve(
        on_connect, cfg.host, cfg.port,
        subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
        select_subprotocol=_select_subprotocol,
        process_request=(gate or Gate(cfg)).process_request,
        open_timeout=10,  # a peer that never finishes its handshake frees its socket
        ssl=tls_context(cfg),
        ping_interval=60, ping_timeout=60,
        max_size=1 << 20,
        max_queue=4,  # frames read ahead per connection: 4 MiB at most, not the default 16
    )
