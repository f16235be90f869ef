"""The cloud's HTTP API on a real uvicorn server on a free loopback port, with a fresh
SQLite database, and API tokens minted the way ``sitegate-cloud tokens create`` does."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from sitegate.cloud.api.app import create_app
from sitegate.cloud.auth import tokens
from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.store.db import make_engine, upgrade
from tests.helpers.app_server import serve_app


@dataclass
class Api:
    url: str
    db: str
    engine: Engine

    def token(self, *scopes: Scope | str, expires_at: datetime | None = None,
              name: str = "test") -> str:
        secret, _ = tokens.create(self.engine, name, frozenset(Scope(s) for s in scopes),
                                  expires_at)
        return secret

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
             headers: dict[str, str] | None = None,
             data: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON or bytes, headers). ``body`` goes as JSON; ``data`` as given."""
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("content-type", "application/json")
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, _decode(r.read(), r.headers), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read(), e.headers), dict(e.headers)


def _decode(raw: bytes, headers: Any) -> Any:
    return json.loads(raw) if "json" in headers.get("content-type", "") else raw


@contextlib.contextmanager
def serve(db: str, allowed_hosts: Sequence[str] | None = None) -> Iterator[str]:
    app = create_app(db) if allowed_hosts is None else create_app(db, allowed_hosts)
    with serve_app(app) as url:
        yield url


@contextlib.contextmanager
def running_api(tmp: Path) -> Iterator[Api]:
    """The API over a fresh migrated database in ``tmp``."""
    db = str(tmp / "cloud.db")
    upgrade(db)
    engine = make_engine(db)
    try:
        with serve(db) as url:
            yield Api(url, db, engine)
    finally:
        engine.dispose()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as running:
        yield running
