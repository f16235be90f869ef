"""Issue 12 part 4 and issue 17's HTTP bullets, against a real server: every route needs a
token with the right scope; revoked and expired tokens are refused; a cross-origin form post
and a foreign Host header are refused; unknown query parameters are a 422; pay without an
amount is a 422; /docs works without the internet."""

from __future__ import annotations

import json
import re
import select
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert

from sitegate.cloud.api.app import create_app
from sitegate.cloud.auth import tokens
from sitegate.cloud.auth.scopes import OPERATIONS, Scope
from sitegate.cloud.store import tables as t

from .conftest import Api, serve

R, M, W, S, G = (Scope.READ, Scope.MONEY_READ, Scope.BILLING_WRITE, Scope.SITE_ADMIN,
                 Scope.GATEWAY_ADMIN)
# What each route needs, written out here (not read from the code) so that a route whose
# scope changes, or a new route nobody classified, fails this test.
EXPECTED = {
    ("GET", "/health"): R,
    ("GET", "/gateways"): R,
    ("GET", "/gateways/{gateway_id}"): R,
    ("GET", "/readings"): R,
    ("GET", "/dead-letters"): R,
    ("POST", "/claim-tokens"): G,  # enrol a gateway: as `gateways claim-token`
    ("GET", "/claim-tokens"): G,
    ("POST", "/claim-tokens/{token_id}/revoke"): G,
    ("GET", "/billing/sites"): R,
    ("PUT", "/billing/sites"): S,
    ("GET", "/billing/sites/{site}"): M,
    ("POST", "/billing/sites/{site}/bill/{period}"): W,
    ("GET", "/billing/sites/{site}/invoices"): M,
    ("GET", "/billing/sites/{site}/overview"): M,
    ("GET", "/billing/sites/{site}/late"): M,
    ("GET", "/billing/sites/{site}/export"): M,
    ("GET", "/billing/sites/{site}/invoices/{number}"): M,
    ("GET", "/billing/sites/{site}/invoices/{number}/explain"): M,
    ("GET", "/billing/sites/{site}/invoices/{number}/pdf"): M,
    ("POST", "/billing/sites/{site}/invoices/{number}/{action}"): W,
    ("POST", "/billing/sites/{site}/readings"): W,  # readings from outside the gateway
    ("GET", "/billing/sites/{site}/sessions/{gateway}/{session_id}/ocmf.xml"): R,  # ocmf part
    ("GET", "/billing/sites/{site}/sessions/{gateway}/{session_id}/ocmf"): R,
    # expense statements and received invoices (issue 15)
    ("GET", "/expense/sites/{site}/periods"): M,
    ("PUT", "/expense/sites/{site}/periods"): W,
    ("GET", "/expense/sites/{site}/periods/{period}"): M,
    ("POST", "/expense/sites/{site}/periods/{period}/invoices"): W,
    ("PUT", "/expense/sites/{site}/periods/{period}/advances"): W,
    ("POST", "/expense/sites/{site}/periods/{period}/run"): W,
    ("GET", "/expense/sites/{site}/periods/{period}/statements"): M,
    ("GET", "/expense/sites/{site}/periods/{period}/overall"): M,
    ("GET", "/expense/sites/{site}/periods/{period}/overall/pdf"): M,
    ("GET", "/expense/sites/{site}/periods/{period}/statements/{account}"): M,
    ("GET", "/expense/sites/{site}/periods/{period}/statements/{account}/explain"): M,
    ("GET", "/expense/sites/{site}/periods/{period}/statements/{account}/pdf"): M,
    ("GET", "/expense/sites/{site}/periods/{period}/export"): M,
    ("PUT", "/expense/sites/{site}/hierarchy"): W,
    ("POST", "/expense/sites/{site}/meters/{meter_id}/invoices/received"): W,
    ("GET", "/expense/sites/{site}/meters/{meter_id}/invoices/received"): M,
    ("GET", "/expense/sites/{site}/received/alerts"): M,
    ("GET", "/expense/sites/{site}/received/{rid}/distribution"): M,
    # stays, jobs, payments (issue 16)
    ("GET", "/stays/{site}/units"): M,
    ("PUT", "/stays/{site}/units"): S,
    ("GET", "/stays/{site}/reservations"): M,
    ("POST", "/stays/{site}/reservations"): W,
    ("POST", "/stays/{site}/reservations/{rid}/status"): W,
    ("GET", "/stays/{site}/readings"): R,
    ("POST", "/stays/{site}/readings"): W,
    ("POST", "/stays/{site}/reservations/{rid}/checkout"): W,
    ("POST", "/stays/{site}/settle"): W,
    ("GET", "/stays/{site}/reservations/{rid}/document"): M,
    ("GET", "/stays/{site}/reservations/{rid}/explain"): M,
    ("POST", "/payments/{site}/statements"): W,
    ("GET", "/payments/{site}/credits"): M,
    ("POST", "/payments/{site}/credits/{credit_id}/assign"): W,
    ("PUT", "/jobs/{site}/settings"): S,
    ("PUT", "/jobs/{site}/jobs"): W,
    ("GET", "/jobs/{site}/jobs"): M,
    ("GET", "/jobs/{site}/jobs/{job_id}"): M,
    ("GET", "/jobs/{site}/jobs/{job_id}/quote.pdf"): M,
    ("POST", "/jobs/{site}/jobs/{job_id}/quote"): W,
    ("POST", "/jobs/{site}/jobs/{job_id}/invoice"): W,
    ("POST", "/jobs/{site}/jobs/{job_id}/cancel"): W,
    ("GET", "/jobs/{site}/export"): M,
}
# The customer's quote acceptance page: its credential is the one-time token of the link
# in the quote's e-mail (?t=), not an API token (tests/jobs accepts through it).
LINK = {("GET", "/jobs/accept"), ("POST", "/jobs/accept")}
PARAMS = {"gateway_id": "gw-1", "site": "nowhere", "period": "2026-01", "number": "1",
          "action": "issue", "gateway": "gw-1", "session_id": "CP1-1", "meter_id": "m1",
          "account": "a1", "rid": "1", "token_id": "0" * 12, "job_id": "j1",
          "credit_id": "1"}


def _routes(api: Api) -> list[tuple[str, str]]:
    code, spec, _ = api.call("GET", "/openapi.json")
    assert code == 200
    return [(m.upper(), p) for p, item in spec["paths"].items() for m in item]


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m[1]], path)


def test_every_route_is_classified(api: Api) -> None:
    assert sorted(_routes(api)) == sorted([*EXPECTED, *LINK])
    assert set(OPERATIONS.values()) == set(Scope)  # every scope is needed by something


def test_every_route_needs_a_token_with_its_scope(api: Api) -> None:
    good = {s: api.token(s, name=s.value) for s in Scope}
    # all scopes but the one needed: a token that may do much, yet not this
    others = {s: api.token(*(x for x in Scope if x != s), name=f"not-{s.value}") for s in Scope}
    for method, path in _routes(api):
        if (method, path) in LINK:  # no link token, or a wrong one: refused all the same
            for query in ("", "?t=" + "A" * 43, "?t=x"):
                body = {"name": "x"} if method == "POST" else None
                code, _, _ = api.call(method, path + query, body, token=good[Scope.READ])
                assert code == 403, (method, path, query, code)
            continue
        url, needed = _concrete(path), EXPECTED[(method, path)]
        body = {} if method in ("POST", "PUT") else None
        code, detail, headers = api.call(method, url, body)
        assert code == 401, (method, path, code, detail)
        assert headers.get("www-authenticate", "").startswith("Bearer"), (method, path)
        for bad in ("sgt_" + "A" * 43, "not-a-token", good[needed] + "x"):
            code, _, _ = api.call(method, url, body, token=bad)
            assert code == 401, (method, path, bad, code)
        code, detail, _ = api.call(method, url, body, token=others[needed])
        assert code == 403 and needed.value in detail["detail"], (method, path, code, detail)
        code, detail, _ = api.call(method, url, body, token=good[needed])
        assert code not in (401, 403), (method, path, code, detail)
        # issue 17: an unknown query parameter is an error on every route
        code, detail, _ = api.call(method, url + "?bogus=1", body, token=good[needed])
        assert code == 422 and detail["detail"][0]["loc"] == ["query", "bogus"], \
            (method, path, code, detail)


def test_revoked_and_expired_tokens_are_refused(api: Api) -> None:
    token = api.token(Scope.READ, name="accounting")
    assert api.call("GET", "/gateways", token=token)[0] == 200
    tokens.revoke(api.engine, "accounting")
    code, body, headers = api.call("GET", "/gateways", token=token)
    assert code == 401 and "invalid_token" in headers["www-authenticate"], body
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = api.token(Scope.READ, expires_at=past, name="old")
    assert api.call("GET", "/gateways", token=expired)[0] == 401
    later = api.token(Scope.READ, expires_at=datetime.now(UTC) + timedelta(days=1))
    assert api.call("GET", "/gateways", token=later)[0] == 200


def test_the_database_holds_no_token(api: Api) -> None:
    token = api.token(Scope.READ)
    with api.engine.connect() as conn:
        rows = conn.execute(t.api_tokens.select()).mappings().all()
    assert [r["token_hash"] for r in rows] == [tokens.digest(token)]
    assert token not in repr([dict(r) for r in rows])


@pytest.mark.parametrize("ctype,data", [
    ("application/x-www-form-urlencoded", b"amount=1000.00"),
    ("text/plain", b'{"amount": "1000.00"}'),  # a CORS-simple type carrying JSON text
    ("multipart/form-data; boundary=x",
     b'--x\r\nContent-Disposition: form-data; name="amount"\r\n\r\n1000.00\r\n--x--\r\n'),
])
def test_cross_origin_form_post_is_refused(api: Api, ctype: str, data: bytes) -> None:
    """What a page on another origin can send without a preflight: refused, token or not
    (a browser would not attach our bearer token, but the server must not rely on that)."""
    token = api.token(Scope.BILLING_WRITE, Scope.SITE_ADMIN)
    for path in ("/billing/sites/s/invoices/1/pay", "/billing/sites/s/bill/2026-01"):
        for tok in (None, token):
            code, body, _ = api.call("POST", path, data=data, token=tok, headers={
                "content-type": ctype, "origin": "https://attacker.example"})
            assert code == 415, (path, tok, code, body)
    code, _, _ = api.call("PUT", "/billing/sites", data=b"site=x", token=token,
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert code == 415


def test_foreign_host_is_refused(api: Api) -> None:
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends its own name."""
    token = api.token(Scope.READ)
    port = api.url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example"):
        code, body, _ = api.call("GET", "/gateways", token=token, headers={"host": host})
        assert code == 400, (host, code, body)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert api.call("GET", "/gateways", token=token, headers={"host": host})[0] == 200


def test_allowed_hosts_are_configurable(tmp_path) -> None:
    db = str(tmp_path / "c.db")
    api_ = None
    from sitegate.cloud.store.db import make_engine, upgrade

    upgrade(db)
    with serve(db, ["api.example.org"]) as url:
        api_ = Api(url, db, make_engine(db))
        token = api_.token(Scope.READ)
        assert api_.call("GET", "/health", token=token,
                         headers={"host": "api.example.org"})[0] == 200
        assert api_.call("GET", "/health", token=token)[0] == 400  # 127.0.0.1 not listed
    api_.engine.dispose()


def test_unknown_query_parameter_is_an_error(api: Api) -> None:
    """GET /readings?meter=apt-1 used to return every meter's rows (issue 17)."""
    now = datetime.now(UTC)
    with api.engine.begin() as conn:
        conn.execute(insert(t.readings), [
            {"gateway_id": "gw-1", "seq": i + 1, "meter_id": m, "ts": now, "quantity": "energy",
             "value": str(Decimal(i)), "unit": "kWh", "quality": "good", "flags": "[]",
             "received_at": now} for i, m in enumerate(("apt-1", "apt-2"))])
    token = api.token(Scope.READ, Scope.MONEY_READ)
    code, body, _ = api.call("GET", "/readings?meter=apt-1", token=token)
    assert code == 422 and body["detail"][0]["loc"] == ["query", "meter"], body
    assert "meter_id" in body["detail"][0]["msg"]  # says what it could have meant
    code, rows, _ = api.call("GET", "/readings?meter_id=apt-1", token=token)
    assert code == 200 and [r["meter_id"] for r in rows] == ["apt-1"]
    code, body, _ = api.call("GET", "/billing/sites/s/invoices?perod=2026-01", token=token)
    assert code == 422 and body["detail"][0]["loc"] == ["query", "perod"]


def test_pay_without_amount_is_422(api: Api) -> None:
    token = api.token(Scope.BILLING_WRITE)
    for body in ({}, {"date": "2026-02-03"}, None):
        code, detail, _ = api.call("POST", "/billing/sites/s/invoices/1/pay", body,
                                   token=token, headers={"content-type": "application/json"})
        assert code == 422 and detail["detail"][0]["loc"] == ["body", "amount"], detail
    # a misspelt field is named, not ignored
    code, detail, _ = api.call("POST", "/billing/sites/s/invoices/1/pay",
                               {"amount": "1.00", "amout": "2"}, token=token)
    assert code == 422 and detail["detail"][0]["loc"][-1] == "amout", detail


def test_docs_work_offline(api: Api) -> None:
    """Swagger UI's page names only assets served by the app itself, and they are there."""
    code, html, _ = api.call("GET", "/docs")
    assert code == 200
    page = html.decode()
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page)
    assert not [u for u in urls if re.match(r"(https?:)?//", u)], urls
    assert '"validatorUrl": null' in page  # Swagger UI would fetch a badge from the internet
    assets = [u for u in urls if u.endswith((".js", ".css"))]
    assert any(u.endswith("swagger-ui-bundle.js") for u in assets), urls
    assert any(u.endswith(".css") for u in assets), urls
    for u in assets:
        code, raw, _ = api.call("GET", u)
        assert code == 200 and len(raw) > 10_000, (u, code)
    code, spec, _ = api.call("GET", "/openapi.json")
    assert code == 200 and spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == \
        "bearer"


def test_an_unguarded_route_stops_the_app(tmp_path) -> None:
    """create_app refuses to run with a route that skips the token check."""
    from sitegate.cloud.api import security

    db = str(tmp_path / "c.db")
    app = create_app(db)

    @app.get("/leak")
    def leak() -> dict[str, str]:
        return {}

    app.openapi_schema = None
    assert security.unguarded_routes(app) == ["GET /leak"]


def test_refusals_are_logged_once_per_interval(api: Api) -> None:
    """Someone guessing tokens is seen in the log, yet a flood of guesses is one line a
    minute per client, with the count of the others."""
    from structlog.testing import capture_logs

    from sitegate.cloud.api.security import refusals

    refusals._seen.clear()
    with capture_logs() as logs:
        for _ in range(20):
            assert api.call("GET", "/gateways", token="sgt_guess")[0] == 401
        assert api.call("GET", "/gateways")[0] == 401  # same client, same status
        refusals._seen.clear()  # as if the interval had passed
        assert api.call("GET", "/gateways", token="sgt_guess")[0] == 401
    refused = [e for e in logs if e["event"] == "api.refused"]
    assert len(refused) == 2, refused
    assert refused[0]["client"] == "127.0.0.1" and refused[0]["path"] == "/gateways"


def test_request_body_is_bounded(api: Api) -> None:
    """A body beyond 1 MiB is refused before it is parsed (413), not read into memory."""
    token = api.token(Scope.SITE_ADMIN)
    big = json.dumps({"site": {"id": "x", "padding": "a" * (1024 * 1024)}}).encode()
    assert code_for_body(api.url, "/billing/sites", big, token) == 413


def code_for_body(url: str, path: str, body: bytes, token: str) -> int:
    """The status of a PUT, over a raw socket: the body goes only once the server has not
    answered on its headers alone. A server that refuses on Content-Length and closes with
    the body unread would reset the connection (and lose its answer) under load."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head)
        if not select.select([s], [], [], 2.0)[0]:
            s.sendall(body)  # it waits for the body: it reads all of it before refusing
        status_line = s.makefile("rb").readline().decode()
    return int(status_line.split()[1])
