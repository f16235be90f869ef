"""The console's FastAPI app, mounted at ``/web`` inside the API's app (``api/app.py``).

A mounted app of its own because its state changes are HTML forms (with CSRF tokens),
where the API takes JSON only; both share the engine, the allowed hosts and the one
authorization model (``auth/users.py`` maps roles onto the API's scopes). Every route
depends on ``guard.login`` except the few public ones listed in ``PUBLIC``; ``create_web``
refuses to start otherwise, like the API does for its tokens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from sitegate.cloud.i18n import pick, text
from sitegate.cloud.web import guard
from sitegate.cloud.web.settings import WebSettings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def when(value: Any) -> str:
    """A time as people read it: ``2026-11-30 01:11 UTC`` (stored times are UTC)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


templates.env.filters["when"] = when
PUBLIC = {"/login", "/logout", "/link/{token}", "/reset"}
# Scripts only from this app (no inline script, no CDN); styles may be set by the charts.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


def create_web(engine: Engine, settings: WebSettings | None = None) -> FastAPI:
    from sitegate.cloud.web import (
        routes_admin,
        routes_auth,
        routes_fleet,
        routes_invoices,
        routes_quality,
        routes_site,
        routes_statement,
        routes_tenant,
    )

    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None,
                  max_body_size=guard.MAX_FORM_BYTES)
    web.state.engine = engine
    web.state.settings = settings or WebSettings()
    web.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (routes_admin, routes_auth, routes_invoices, routes_fleet, routes_quality,
                   routes_site, routes_statement, routes_tenant):
        web.include_router(module.router)

    @web.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # link tokens never leave in a Referer; "no-referrer" would make form posts Origin: null
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/web/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @web.exception_handler(guard.NeedLogin)
    async def need_login(request: Request, exc: guard.NeedLogin) -> Response:
        if request.method == "GET":
            return RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)
        return page(request, "error.html", {"message": "session_over"}, status=401)

    @web.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        key = exc.detail if isinstance(exc.detail, str) else "error"
        return page(request, "error.html", {"message": key}, status=exc.status_code,
                    headers=exc.headers)

    if unguarded := unguarded_routes(web):
        raise RuntimeError(f"console pages without a login check: {unguarded}")
    return web


def unguarded_routes(web: FastAPI) -> list[str]:
    """Routes that neither need a login nor are listed as public (must be none)."""
    out = []
    for r in web.routes:
        if not isinstance(r, APIRoute) or r.path in PUBLIC:
            continue
        calls = {d.call for d in _walk(r.dependant)}
        if guard.login not in calls:
            out.append(r.path)
    return out


def _walk(d: Any) -> Any:
    yield d
    for sub in d.dependencies:
        yield from _walk(sub)


def lang_of(request: Request) -> str:
    p = getattr(request.state, "principal", None)
    return p.language if p is not None else pick(request.headers.get("accept-language"))


def page(request: Request, name: str, context: dict[str, Any], status: int = 200,
         headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render a template with the person's language, session and CSRF token."""
    lang = lang_of(request)
    s = getattr(request.state, "session", None)
    ctx = {"t": lambda key, **kw: text(lang, key, **kw), "lang": lang,
           "me": getattr(request.state, "principal", None),
           "csrf": s.csrf if s is not None else None,
           "base": request.scope.get("root_path", ""), **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status,
                                      headers=headers)
