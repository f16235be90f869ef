"""Who is asking and whether a form is genuine: the console's request dependencies.

Every page depends on ``login`` (a session cookie naming an enabled user; else a redirect
to the login page) and every state change on ``form``: a URL-encoded body of bounded size,
whose ``csrf`` field matches the session's token (or, before login, the double-submit
cookie set with the login form). Operations are then allowed as the API allows them to a
token: ``allow(principal, "invoice.act", site)`` asks the scope ``scopes.py`` names.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request

from sitegate.cloud.auth import users
from sitegate.cloud.auth.users import Principal, Session

COOKIE = "sg_session"
PRE_COOKIE = "sg_form"  # before login: the double-submit token of the login/link forms
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 40


class NeedLogin(Exception):
    """No valid session: the app answers with a redirect to the login page."""


def cookie_args(request: Request) -> dict[str, object]:
    # Secure always: browsers keep Secure cookies on http://localhost and 127.0.0.1 too, and
    # anywhere else the console is behind a TLS proxy (serve refuses plain HTTP there).
    return {"httponly": True, "secure": True, "samesite": "lax", "path": "/web"}


def session(request: Request) -> Session:
    engine = request.app.state.engine
    cookie = request.cookies.get(COOKIE, "")
    found = users.find_session(engine, cookie) if cookie else None
    if found is None:
        raise NeedLogin()
    return found


def login(request: Request, s: Annotated[Session, Depends(session)]) -> Principal:
    p = users.principal(request.app.state.engine, s.user_id)
    if p is None:  # disabled (its sessions were ended) or deleted meanwhile
        raise NeedLogin()
    request.state.principal = p
    request.state.session = s
    return p


def allow(p: Principal, operation: str, site: str) -> None:
    """403 unless ``p`` may perform ``operation`` on ``site`` (the API's scope for it)."""
    if not p.may(operation, site):
        raise HTTPException(403, "not_allowed")


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from (Origin); it must be this site."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def read_form(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise HTTPException(415, "bad_form")
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise HTTPException(413, "bad_form")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "bad_form")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "bad_form") from None
    return {k: v for k, v in pairs}


def _check(expected: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise HTTPException(403, "csrf")


async def form(request: Request, s: Annotated[Session, Depends(session)]) -> dict[str, str]:
    """The posted form of a logged-in user, its CSRF token checked."""
    if not _same_origin(request):
        raise HTTPException(403, "csrf")
    data = await read_form(request)
    _check(s.csrf, data.get("csrf"))
    return data


async def public_form(request: Request) -> dict[str, str]:
    """A posted form before login (login, link, reset): double-submit token."""
    if not _same_origin(request):
        raise HTTPException(403, "csrf")
    data = await read_form(request)
    _check(request.cookies.get(PRE_COOKIE, "") or secrets.token_hex(8), data.get("csrf"))
    return data


def pre_token(request: Request) -> str:
    """The double-submit token for a public form: the cookie's, or a new one."""
    value = request.cookies.get(PRE_COOKIE, "")
    return value if 20 <= len(value) <= 100 else secrets.token_urlsafe(32)


Login = Annotated[Principal, Depends(login)]
Form = Annotated[dict[str, str], Depends(form)]
PublicForm = Annotated[dict[str, str], Depends(public_form)]
