"""``sitegate-cloud tokens create|list|revoke``: shown once, stored hashed, refused once
revoked, bad input said in one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sitegate.cloud.auth import tokens
from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.cli import main
from sitegate.cloud.store.db import make_engine


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "c.db")
    code, out, _ = run(capsys, "tokens", "create", "--db", db, "--name", "accounting",
                       "--scope", "read", "--scope", "billing:write", "--expires", "30d",
                       "--json")
    assert code == 0
    created = json.loads(out)
    secret = created["token"]
    assert secret.startswith("sgt_") and len(secret) >= 40
    assert created["scopes"] == ["billing:write", "read"]
    expires = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    engine = make_engine(db)
    token = tokens.verify(engine, secret)
    assert token is not None and token.scopes == {Scope.READ, Scope.BILLING_WRITE}

    code, out, _ = run(capsys, "tokens", "list", "--db", db)
    assert code == 0 and "accounting" in out and "active" in out and secret not in out
    code, out, _ = run(capsys, "tokens", "list", "--db", db, "--json")
    assert secret not in out and json.loads(out)[0]["state"] == "active"

    code, out, _ = run(capsys, "tokens", "revoke", "--db", db, "accounting")
    assert code == 0 and "revoked" in out
    assert tokens.verify(engine, secret) is None
    code, out, _ = run(capsys, "tokens", "list", "--db", db, "--json")
    assert json.loads(out)[0]["state"] == "revoked"
    code, _, err = run(capsys, "tokens", "revoke", "--db", db, "accounting")
    assert code == 2 and "no unrevoked token" in err
    engine.dispose()


def test_text_output_shows_the_token_once_with_its_use(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tokens", "create", "--db", str(tmp_path / "c.db"), "--name",
                       "ops", "--scope", "site:admin,gateway:admin")
    assert code == 0
    secret = next(w for w in out.split() if w.startswith("sgt_"))
    assert "Authorization: Bearer" in out and "once" in out
    assert tokens.verify(make_engine(str(tmp_path / "c.db")), secret) is not None


@pytest.mark.parametrize("argv,message", [
    (["--scope", "admin"], "unknown scope 'admin'"),
    (["--scope", "read", "--expires", "soon"], "--expires 'soon'"),
    (["--scope", "read", "--expires", "2001-01-01"], "in the past"),
    (["--scope", "read", "--name", "bad\nname"], "token name"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               argv: list[str], message: str) -> None:
    args = ["tokens", "create", "--db", str(tmp_path / "c.db"), "--name", "x", *argv]
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err and not out


def test_expired_token_is_listed_as_expired(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "c.db")
    run(capsys, "tokens", "list", "--db", db)  # creates the schema
    engine = make_engine(db)
    tokens.create(engine, "old", frozenset({Scope.READ}),
                  datetime.now(UTC) - timedelta(minutes=1))
    code, out, _ = run(capsys, "tokens", "list", "--db", db, "--json")
    assert json.loads(out)[0]["state"] == "expired"
    engine.dispose()


def test_scopes_lists_what_each_allows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tokens", "scopes", "--json")
    rows = {r["scope"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == {s.value for s in Scope}
    assert "invoice.act" in rows["billing:write"]["operations"]
    assert rows["site:admin"]["operations"] == [  # the site's setup, of each part
        "jobs.settings", "site.import", "stays.units-import"]
