"""The campsite of config/examples/stays/ in a migrated SQLite database: fixtures shared by
tests/stays, tests/payments and tests/jobs (each conftest imports them)."""

from __future__ import annotations

import contextlib
import tomllib
from datetime import date
from pathlib import Path

import pytest

from sitegate.cloud.billing import ops as billing_ops
from sitegate.cloud.billing.sitemodel import load_site
from sitegate.cloud.stays import ops
from sitegate.cloud.stays.setup import read_setup_file

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples" / "stays"


@pytest.fixture(scope="session")
def migrated(tmp_path_factory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (a migration is ~1 s)."""
    from sitegate.cloud.store.db import upgrade

    path = tmp_path_factory.mktemp("stays-template") / "cloud.db"
    upgrade(str(path))
    return path


@pytest.fixture
def db_path(tmp_path, migrated) -> Path:
    import shutil

    path = tmp_path / "cloud.db"
    for suffix in ("", "-wal", "-shm"):  # WAL: the migration may still be in the log
        src = migrated.with_name(migrated.name + suffix)
        if src.exists():
            shutil.copyfile(src, path.with_name(path.name + suffix))
    return path


@pytest.fixture
def db(db_path):
    from sitegate.cloud.store.db import make_engine

    engine = make_engine(str(db_path))
    yield engine
    engine.dispose()


@pytest.fixture
def camp(db):
    """Site, units, reservations of the example campsite; no readings yet."""
    billing_ops.import_site(db, load_site(EXAMPLES / "site-campsite.toml"))
    ops.import_units(db, None, read_setup_file(EXAMPLES / "units.toml"))
    doc = tomllib.loads((EXAMPLES / "reservations.toml").read_text(encoding="utf-8"))
    ops.import_reservations(db, None, doc["reservations"])
    return db


def bulk(engine, name: str, day: date, unit_type: str | None = "chalet"):
    path = EXAMPLES / name
    return ops.enter_readings(engine, None, path.name, path.read_bytes(), "Hauswart",
                              unit_type, day)


@pytest.fixture
def enter():
    """enter(file of config/examples/stays, day, unit_type="chalet"): a bulk list."""
    return bulk


@pytest.fixture
def read_camp(camp):
    """The campsite with the bulk readings of 1 and 14 July (C3 not read on the 14th)."""
    bulk(camp, "readings-2026-07-01.csv", date(2026, 7, 1))
    bulk(camp, "readings-2026-07-14.csv", date(2026, 7, 14))
    return camp


@contextlib.contextmanager
def api_server(db_path: Path):
    """The HTTP API (real uvicorn) on a free loopback port over the database: its URL."""
    from sitegate.cloud.api.app import create_app
    from tests.helpers.app_server import serve_app

    with serve_app(create_app(str(db_path))) as url:
        yield url
