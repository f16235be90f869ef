"""Logging in and out, one-time links (invitation, password reset), the start page."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from sitegate.cloud.auth import users
from sitegate.cloud.web import guard
from sitegate.cloud.web.app import lang_of, page
from sitegate.cloud.web.guard import Form, Login, PublicForm
from sitegate.cloud.web.mail import MailError, link_mail, send

router = APIRouter()
log = structlog.get_logger(__name__)


def console_url(request: Request) -> str:
    """The console's address for links in mails: --public-url, else as this request came."""
    base = request.app.state.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
    return f"{base}/web"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _public_page(request: Request, name: str, ctx: dict, status: int = 200) -> Response:
    token = guard.pre_token(request)
    resp = page(request, name, {**ctx, "csrf": token}, status=status)
    resp.set_cookie(guard.PRE_COOKIE, token, max_age=3600, **guard.cookie_args(request))
    return resp


def _logged_in(request: Request, user_id: int) -> Response:
    s = users.start_session(request.app.state.engine, user_id)
    resp = RedirectResponse(f"{request.scope.get('root_path', '')}/", 303)
    resp.set_cookie(guard.COOKIE, s.cookie, max_age=users.SESSION_HOURS * 3600,
                    **guard.cookie_args(request))
    resp.delete_cookie(guard.PRE_COOKIE, path="/web")
    return resp


@router.get("/")
def home(request: Request, me: Login) -> Response:
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/sites" if me.is_staff else f"{root}/me", 303)


@router.get("/login")
def login_page(request: Request) -> Response:
    return _public_page(request, "login.html", {})


@router.post("/login")
def login(request: Request, f: PublicForm) -> Response:
    email = f.get("email", "")[:254]
    try:
        uid = users.login(request.app.state.engine, email, f.get("password", ""),
                          _client(request))
    except users.LoginRefused as exc:
        throttled = exc.retry_after is not None
        resp = _public_page(request, "login.html",
                            {"error": "login_throttled" if throttled else "login_wrong",
                             "email": email}, status=429 if throttled else 401)
        if throttled:
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    return _logged_in(request, uid)


@router.post("/logout")
def logout(request: Request, f: Form) -> Response:
    users.end_session(request.app.state.engine, request.cookies.get(guard.COOKIE, ""))
    resp = RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)
    resp.delete_cookie(guard.COOKIE, path="/web")
    return resp


@router.post("/language")
def language(request: Request, me: Login, f: Form) -> Response:
    """The person's language for every page from now on (and for their mails)."""
    try:
        users.set_language(request.app.state.engine, me.id, f.get("language", ""))
    except users.UserError:
        raise HTTPException(400, "error") from None
    return RedirectResponse(f"{request.scope.get('root_path', '')}/", 303)


@router.get("/link/{token}")
def link_page(request: Request, token: str) -> Response:
    # GET never uses the link up: mail scanners open links before people do
    found = users.link_user(request.app.state.engine, token)
    if found is None:
        return page(request, "error.html", {"message": "link_invalid"}, status=404)
    return _public_page(request, "set_password.html", {"found": found, "token": token})


@router.post("/link/{token}")
def link_use(request: Request, token: str, f: PublicForm) -> Response:
    engine = request.app.state.engine
    pw, again = f.get("password", ""), f.get("password2", "")
    found = users.link_user(engine, token)
    if found is None:
        return page(request, "error.html", {"message": "link_invalid"}, status=404)
    if pw != again:
        return _public_page(request, "set_password.html",
                            {"found": found, "token": token, "error": "password_mismatch"},
                            status=400)
    try:
        uid = users.use_link(engine, token, pw)
    except users.UserError:
        return _public_page(request, "set_password.html",
                            {"found": found, "token": token, "error": "password_rules"},
                            status=400)
    return _logged_in(request, uid)


@router.get("/reset")
def reset_page(request: Request) -> Response:
    return _public_page(request, "reset.html", {})


@router.post("/reset")
def reset(request: Request, f: PublicForm) -> Response:
    """The same answer whether the address is known or not (no list of users to probe)."""
    settings = request.app.state.settings
    engine = request.app.state.engine
    try:
        email = users.check_email(f.get("email", ""))
        token = users.make_link(engine, email, "reset")
    except users.UserError:
        token = None
    if token is not None and not users.may_send_reset(engine, email, _client(request)):
        token = None  # asked too often: no more mails this window (same answer)
    if token is not None and settings.smtp is not None:
        found = users.link_user(engine, token)
        url = f"{console_url(request)}/link/{token}"
        try:
            send(settings, link_mail(settings, email, found["name"] if found else "",
                                     lang_of(request), "reset", url))
        except MailError as exc:  # the person sees the same page and may ask again
            log.warning("web.reset_mail_failed", error=str(exc))
    return _public_page(request, "reset.html", {"sent": True})
