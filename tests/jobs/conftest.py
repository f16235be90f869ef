"""Jobs tests: a migrated database with the example site, a real SMTP server (aiosmtpd)
and the real HTTP API on free loopback ports."""

import socket
import sys
import tomllib
from email import message_from_bytes, policy
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stays"))
from campsite import api_server, db, db_path, migrated  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "config" / "examples" / "jobs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """What the real SMTP server in the test received."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield ctl.port, inbox
    ctl.stop()


@pytest.fixture
def site_db(db):  # noqa: F811 (the imported fixture)
    from sitegate.cloud.billing import ops as billing_ops
    from sitegate.cloud.billing.sitemodel import load_site

    billing_ops.import_site(db, load_site(ROOT / "config/examples/site-lindenweg.toml"))
    return db


@pytest.fixture
def job_spec() -> dict:
    return tomllib.loads((EX / "job-connection.toml").read_text(encoding="utf-8"))


@pytest.fixture
def server(db_path, site_db):  # noqa: F811 (the imported fixture)
    """The HTTP API on a free loopback port over the same database."""
    with api_server(db_path) as url:
        yield url
