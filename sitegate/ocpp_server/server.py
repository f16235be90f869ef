"""The WebSocket side: ``ws(s)://host:port/ocpp/{charge_point_id}``.

The handshake decides who gets in (path, known charger, HTTP basic auth for security
profiles 1 and 2) and which OCPP version is spoken (subprotocol; none offered means 1.6).
"""

from __future__ import annotations

import hmac
import http
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

log = structlog.get_logger(__name__)

PREFIX = "/ocpp/"
SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
VERSION = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", None: "1.6"}


def charge_point_id(path: str) -> str | None:
    path = path.split("?", 1)[0]
    if not path.startswith(PREFIX):
        return None
    cp_id = unquote(path[len(PREFIX):]).strip("/")
    return cp_id if cp_id and "/" not in cp_id else None


def _select_subprotocol(conn: ServerConnection, offered: Any) -> str | None:
    for proto in SUBPROTOCOLS:  # our preference order
        if proto in offered:
            return proto
    # No subprotocol (old 1.6 firmware) or only ones we do not speak: answer as 1.6 without
    # a subprotocol header; a charger speaking something else will fail on its first message.
    return None


def _unauthorized(conn: ServerConnection, why: str) -> Response:
    response = conn.respond(http.HTTPStatus.UNAUTHORIZED, why + "\n")
    response.headers["WWW-Authenticate"] = build_www_authenticate_basic("sitegate")
    return response


def make_process_request(cfg: OcppConfig) -> Callable[[ServerConnection, Request],
                                                      Response | None]:
    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        cp_id = charge_point_id(request.path)
        if cp_id is None:
            return conn.respond(http.HTTPStatus.NOT_FOUND, "expected /ocpp/{charge_point_id}\n")
        known = cfg.charge_point(cp_id)
        if known is None and cfg.security.unknown_chargers == "reject":
            log.warning("ocpp.unknown_charger_rejected", charge_point=cp_id,
                        peer=str(conn.remote_address))
            return conn.respond(http.HTTPStatus.NOT_FOUND, "unknown charge point\n")
        if cfg.security.profile >= 1 and known is not None:
            return _check_basic(conn, request.headers, cp_id, known.password)
        return None

    return process_request


def _check_basic(conn: ServerConnection, headers: Headers, cp_id: str,
                 password: str | None) -> Response | None:
    try:
        user, given = parse_authorization_basic(headers["Authorization"])
    except KeyError:
        log.warning("ocpp.auth_missing", charge_point=cp_id)
        return _unauthorized(conn, "missing credentials")
    except InvalidHeader:
        return _unauthorized(conn, "unsupported credentials")
    # OCPP security profiles: the user name is the charge point id.
    ok = password is not None and user == cp_id and hmac.compare_digest(
        given.encode(), password.encode())
    if not ok:
        log.warning("ocpp.auth_failed", charge_point=cp_id, user=user)
        return _unauthorized(conn, "invalid credentials")
    return None


def tls_context(cfg: OcppConfig) -> ssl.SSLContext | None:
    if cfg.security.profile != 2:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP security whitepaper: TLS 1.2 or newer
    assert cfg.security.certfile and cfg.security.keyfile
    ctx.load_cert_chain(cfg.security.certfile, cfg.security.keyfile)
    return ctx


async def start_server(cfg: OcppConfig,
                       handler: Callable[[ServerConnection, str, str], Awaitable[None]]
                       ) -> Server:
    async def on_connect(ws: ServerConnection) -> None:
        cp_id = charge_point_id(ws.request.path if ws.request else "")
        assert cp_id is not None  # process_request let only valid paths through
        await handler(ws, cp_id, VERSION.get(ws.subprotocol, "1.6"))

    return await serve(
        on_connect, cfg.host, cfg.port,
        subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
        select_subprotocol=_select_subprotocol,
        process_request=make_process_request(cfg),
        ssl=tls_context(cfg),
        ping_interval=60, ping_timeout=60,
        max_size=1 << 20,
    )
