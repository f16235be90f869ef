"""Who may call the API and what a request must look like: FastAPI security dependencies.

Every route names the operation it performs (``dependencies=needs("readings.list")``): the
caller must send ``Authorization: Bearer <token>`` with a token holding the scope that
operation needs (``sitegate.cloud.auth.scopes``). No token, or an unknown, revoked or
expired one: 401; a token without the scope: 403. ``create_app`` refuses to start with an
operation that is not guarded. Public are only the API's description (``/openapi.json``) and
the pages that show it (``/docs`` and its assets): they hold no data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from sitegate.cloud.auth.scopes import needed
from sitegate.cloud.auth.tokens import Token, verify

log = structlog.get_logger(__name__)
bearer = HTTPBearer(
    auto_error=False,  # a missing header is our 401 with our message, like a bad token
    description="an API token from `sitegate-cloud tokens create`",
)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RefusalLog:
    """Refused requests, logged once per client and kind per interval with the count since:
    an operator sees someone guessing tokens, and a flood of guesses cannot flood the log."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._seen: dict[tuple[str, int], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def refused(self, request: Request, status: int, reason: str) -> None:
        client = request.client.host if request.client else "?"
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:  # bounded, whatever the number of addresses
                self._seen.clear()
            last, count = self._seen.get((client, status), (-self.interval, 0))
            if now - last < self.interval:
                self._seen[(client, status)] = (last, count + 1)
                return
            self._seen[(client, status)] = (now, 0)
        log.warning("api.refused", status=status, reason=reason, client=client,
                    path=request.url.path, more_since_last=count)


refusals = RefusalLog()


def authorize(
    security_scopes: SecurityScopes, request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Token:
    if credentials is None:
        refusals.refused(request, 401, "no token")
        raise HTTPException(401, "an API token is needed: Authorization: Bearer <token> "
                            "(sitegate-cloud tokens create)",
                            headers={"WWW-Authenticate": "Bearer"})
    token = verify(request.app.state.engine, credentials.credentials)
    if token is None:
        refusals.refused(request, 401, "unknown, revoked or expired token")
        raise HTTPException(401, "unknown, revoked or expired API token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    missing = [s for s in security_scopes.scopes if s not in token.scopes]
    if missing:
        refusals.refused(request, 403, f"token {token.id} ({token.name}) lacks {missing}")
        raise HTTPException(403, f"this token lacks the scope {' '.join(missing)}",
                            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", '
                                     f'scope="{security_scopes.scope_str}"'})
    return token


def known_query_only(request: Request) -> None:
    """An unknown query parameter is an error (422), never silently ignored: a misspelt
    filter (``?meter=`` for ``?meter_id=``) must not return everything unfiltered."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = {f.alias for f in _query_fields(route.dependant)}
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise RequestValidationError([
            {"type": "extra_forbidden", "loc": ("query", name),
             "msg": f"unknown query parameter; known: {', '.join(sorted(allowed)) or 'none'}",
             "input": request.query_params[name]} for name in unknown])


def json_only(request: Request) -> None:
    """State changes take JSON only: a browser's cross-origin form post (CSRF) gets 415."""
    if request.method not in WRITE_METHODS:
        return
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/")
                                            and media.endswith("+json")):
        raise HTTPException(415, "send JSON: Content-Type: application/json")


def needs(operation: str) -> list[Any]:
    """The dependencies of a route performing ``operation``: token with its scope, then no
    unknown query parameters (after authentication: a stranger learns nothing)."""
    return [Security(authorize, scopes=[needed(operation).value]), Depends(known_query_only)]


def unguarded_routes(app: FastAPI) -> list[str]:
    """Operations of the API that do not require a token (must be none). Read from the
    OpenAPI document, which lists every route, those of included routers too."""
    return [f"{method.upper()} {path}" for path, item in app.openapi()["paths"].items()
            for method, op in item.items() if not op.get("security")]


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def _query_fields(dependant: Dependant) -> Iterator[Any]:
    for d in _walk(dependant):
        yield from d.query_params
