"""People of the console: argon2 passwords, session cookies, login throttling, CSRF,
one-time links mailed through a real SMTP server (aiosmtpd), disabling, roles as scopes."""

from __future__ import annotations

import email
import json
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from console_kit import PASSWORD, SITE, Browserless, make_console
from sqlalchemy import select

from sitegate.cloud.auth import users
from sitegate.cloud.auth.scopes import OPERATIONS, Scope
from sitegate.cloud.cli import main
from sitegate.cloud.store.tables_web import web_users
from sitegate.cloud.web.settings import WebSettings


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


def _link(msg: email.message.Message) -> str:
    body = msg.get_payload(decode=True).decode()
    return re.search(r"http://\S+/web/link/\S+", body)[0]


def test_password_is_an_argon2id_hash_and_the_session_cookie_is_locked_down(console) -> None:
    console.user("op@example.ch", "operator")
    with console.engine.connect() as conn:
        stored = conn.execute(select(web_users.c.password_hash)).scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    b = Browserless(console.url)
    b.csrf("/web/login")
    code, _, headers = b.request("POST", "/web/login", {
        "email": "op@example.ch", "password": PASSWORD, "csrf": b.cookies["sg_form"]})
    assert code == 303
    cookie = next(c for c in headers.get_all("set-cookie") if c.startswith("sg_session="))
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax", "path=/web"} <= flags
    assert b.get("/web/sites")[0] == 200


def test_wrong_password_then_throttled_even_with_the_right_one(console) -> None:
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    for _ in range(users.THROTTLE["user"]):
        assert b.login("op@example.ch", "wrong password!") == 401
    code = b.login("op@example.ch")  # right password, but too many failures before
    assert code == 429
    # another account from the same address is not locked by this one's failures
    console.user("ben@example.ch", "tenant", "ben")
    assert b.login("ben@example.ch") == 303


def test_throttle_window_ends(console) -> None:
    console.user("op@example.ch", "operator")
    past = datetime.now(UTC) - users.THROTTLE_WINDOW - timedelta(minutes=1)
    for _ in range(users.THROTTLE["user"]):
        with pytest.raises(users.LoginRefused):
            users.login(console.engine, "op@example.ch", "nope nope nope", "1.2.3.4", past)
    assert users.login(console.engine, "op@example.ch", PASSWORD, "1.2.3.4") > 0


def test_form_without_or_with_a_wrong_csrf_token_is_refused(console) -> None:
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    number = console.numbers["anna"]
    path = f"/web/sites/{SITE}/invoices/{number}/act/issue"
    token = b.csrf(path)
    assert b.request("POST", path, {"date": "2026-02-02"})[0] == 403
    assert b.request("POST", path, {"date": "2026-02-02", "csrf": token[:-2] + "xx"})[0] == 403
    # a page elsewhere posting the right token (it cannot know it, but still): Origin refused
    code, _, _ = b.request("POST", path, {"date": "2026-02-02", "csrf": token},
                           headers={"Origin": "http://attacker.example"})
    assert code == 403
    assert "draft" in b.get(f"/web/sites/{SITE}/invoices/{number}")[1]  # nothing happened
    code, _, _ = b.request("POST", path, {"date": "2026-02-02", "csrf": token})
    assert code == 303
    assert "in progress" in b.get(f"/web/sites/{SITE}/invoices/{number}")[1]
    # a JSON body is not a form of ours either
    code, _, _ = b.request("POST", path, None, headers={"Content-Type": "application/json"})
    assert code == 415


def test_login_form_needs_its_double_submit_token(console) -> None:
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    b.csrf("/web/login")
    code, _, _ = b.request("POST", "/web/login", {"email": "op@example.ch",
                                                  "password": PASSWORD})
    assert code == 403


def test_invitation_mailed_by_the_cli_sets_the_password_once(tmp_path, smtp, capsys) -> None:
    inbox, port = smtp
    for c in make_console(tmp_path):
        cli = ["users", "invite", "Anna@Example.ch", "--name", "Anna Muster", "--role",
               "tenant", "--site", SITE, "--account", "anna", "--language", "de",
               "--url", c.url, "--smtp", f"127.0.0.1:{port}", "--db", c.db]
        assert main(cli) == 0
        assert len(inbox.messages) == 1
        msg = inbox.messages[0]
        assert msg["To"] == "anna@example.ch" and "Zugang" in msg["Subject"]
        path = _link(msg).removeprefix(c.url)
        b = Browserless(c.url)
        token = b.csrf(path)
        assert b.get(path)[0] == 200  # opening the link (a mail scanner) does not use it up
        code, _, _ = b.request("POST", path, {"password": "a new long password",
                                              "password2": "a new long password",
                                              "csrf": token})
        assert code == 303 and "sg_session" in b.cookies
        assert "Mein Konto" in b.get("/web/me")[1]  # her language, from the invitation
        again = Browserless(c.url)
        assert again.get(path)[0] == 404  # used once, dead
        assert again.login("anna@example.ch", "a new long password") == 303


def test_invite_with_the_mail_server_down_is_one_line(tmp_path, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    assert main(["users", "invite", "x@example.ch", "--name", "X", "--role", "owner",
                 "--site", SITE, "--smtp", f"127.0.0.1:{port}", "--db",
                 str(tmp_path / "c.db")]) == 1
    err = capsys.readouterr().err
    assert "not sent" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_password_reset_by_mail_ends_other_sessions(tmp_path, smtp) -> None:
    inbox, port = smtp
    for c in make_console(tmp_path, WebSettings(smtp=("127.0.0.1", port))):
        c.user("op@example.ch", "operator")
        old = Browserless(c.url)
        assert old.login("op@example.ch") == 303
        b = Browserless(c.url)
        token = b.csrf("/web/reset")
        for who in ("op@example.ch", "nobody@example.ch"):  # the same answer for both
            code, html, _ = b.request("POST", "/web/reset", {"email": who, "csrf": token})
            assert code == 200 and "on its way" in html
        assert len(inbox.messages) == 1 and inbox.messages[0]["To"] == "op@example.ch"
        path = _link(inbox.messages[0]).removeprefix(c.url)
        token = b.csrf(path)
        code, _, _ = b.request("POST", path, {"password": "another password 2",
                                              "password2": "another password 2",
                                              "csrf": token})
        assert code == 303
        assert old.get("/web/sites")[0] == 303  # the old session is over: back to login
        assert Browserless(c.url).login("op@example.ch") == 401  # the old password is dead
        # resets are throttled: 3 mails per address per window, then the same answer, no mail
        token = b.csrf("/web/reset")
        for _ in range(4):
            code, html, _ = b.request("POST", "/web/reset", {"email": "op@example.ch",
                                                             "csrf": token})
            assert code == 200 and "on its way" in html
        assert len(inbox.messages) == 1 + 2


def test_disabled_user_is_logged_out_at_once(console) -> None:
    console.user("op@example.ch", "operator")
    b = Browserless(console.url)
    assert b.login("op@example.ch") == 303
    users.disable(console.engine, "op@example.ch")
    code, _, headers = b.get("/web/sites")
    assert code == 303 and headers["location"].endswith("/web/login")
    assert Browserless(console.url).login("op@example.ch") == 401


def test_roles_are_the_api_scopes(console) -> None:
    """Owner reads, cannot act; installer sees no money; operator of another site nothing."""
    console.user("owner@example.ch", "owner")
    console.user("inst@example.ch", "installer")
    console.user("other@example.ch", "operator", site="elsewhere")
    n = console.numbers["anna"]
    b = Browserless(console.url)
    assert b.login("owner@example.ch") == 303
    assert b.get(f"/web/sites/{SITE}/invoices")[0] == 200
    assert b.get(f"/web/sites/{SITE}/invoices/{n}/act/issue")[0] == 403
    b = Browserless(console.url)
    assert b.login("inst@example.ch") == 303
    assert b.get(f"/web/sites/{SITE}/invoices")[0] == 403
    assert b.get(f"/web/sites/{SITE}/invoices/{n}/pdf")[0] == 403
    assert b.get("/web/fleet")[0] == 200
    b = Browserless(console.url)
    assert b.login("other@example.ch") == 303
    assert b.get(f"/web/sites/{SITE}/invoices")[0] == 403
    # the mapping itself: an operator holds every scope, so every operation of the API
    op = users.Principal(1, "o@x.ch", "O", "en", (users.Role(SITE, "operator"),))
    assert all(op.may(operation, SITE) for operation in OPERATIONS)
    assert users.ROLE_SCOPES["owner"] == frozenset({Scope.READ, Scope.MONEY_READ})


def test_cli_add_list_disable_json(tmp_path, capsys) -> None:
    db = str(tmp_path / "c.db")
    assert main(["users", "add", "op@example.ch", "--name", "Olga", "--role", "operator",
                 "--site", "*", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["link"].startswith(
        "http://127.0.0.1:8080/web/link/")
    assert main(["users", "add", "t@example.ch", "--name", "T", "--role", "tenant",
                 "--site", SITE, "--db", db]) == 2
    assert "--account" in capsys.readouterr().err
    assert main(["users", "disable", "op@example.ch", "--db", db]) == 0
    assert main(["users", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "operator@*" in out and "disabled" in out


def test_web_migration_matches_the_tables(tmp_path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sitegate.cloud.store import tables
    from sitegate.cloud.store.db import make_engine, upgrade

    db = str(tmp_path / "m.db")
    upgrade(db)
    engine = make_engine(db)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    ours = [d for d in diff if "web_" in repr(d)]
    assert ours == []
    engine.dispose()


def test_catalogues_have_the_same_keys() -> None:
    from sitegate.cloud.i18n import catalogue, text

    assert set(catalogue("en")) == set(catalogue("de"))
    assert text("de", "col_balance") == "Saldo" and text("fr", "col_balance") == "Balance"
    used = set()
    for p in (Path(__file__).parents[2] / "sitegate/cloud/web/templates").glob("*.html"):
        used |= set(re.findall(r"""t\("([a-z_A-Z0-9-]+)"\)""", p.read_text()))
    assert used <= set(catalogue("en")), used - set(catalogue("en"))
