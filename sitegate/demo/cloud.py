"""The cloud side of the demo: ingest (as ``sitegate-cloud serve`` runs it), the HTTP API and
billing, on one SQLite file in the demo directory."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn
from sqlalchemy import text

from sitegate.cloud.api.app import create_app
from sitegate.cloud.auth import tokens
from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.billing import ops
from sitegate.cloud.billing.sitemodel import load_site
from sitegate.cloud.ingest.service import IngestService
from sitegate.cloud.keys import write_private
from sitegate.cloud.store.db import make_engine, upgrade


class _QuietServer(uvicorn.Server):
    """uvicorn inside the demo's loop: Ctrl-C belongs to the demo, which stops it in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cloud:
    def __init__(self, workdir: Path, broker_url: str, site_model: Path) -> None:
        self.db = str(workdir / "cloud.db")
        self.workdir = workdir
        self.keys = workdir / "cloud-keys"  # downlink.key signs config, badges, commands
        self.broker_url = broker_url
        self.site_model = site_model
        self.engine = make_engine(self.db)
        self.api_url = ""
        self.token_file = workdir / "api-token"  # the API needs a bearer token (0600)
        self._stop = threading.Event()
        self._ingest: threading.Thread | None = None
        self._api: _QuietServer | None = None
        self._api_task: asyncio.Task[None] | None = None

    def downlink_pub(self) -> bytes:
        """The cloud's downlink key directory in the demo directory (made on first use):
        the public half, which enrolment would hand the gateway."""
        from sitegate.cloud.keys import downlink_key, keys_dir

        downlink_key(keys_dir(str(self.keys)))
        return (self.keys / "downlink.pub").read_bytes()

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.db)
        model = await asyncio.to_thread(load_site, self.site_model)
        await asyncio.to_thread(ops.import_site, self.engine, model)
        # As an operator would: sitegate-cloud tokens create --name demo --scope ...
        secret, _ = await asyncio.to_thread(tokens.create, self.engine, "demo", frozenset(Scope))
        write_private(self.token_file, secret.encode() + b"\n")
        # The web console's demo people, as sitegate-cloud users add would make them
        await asyncio.to_thread(self._console_users)
        service = IngestService(self.db, self.broker_url)
        self._ingest = threading.Thread(target=service.run, args=(self._stop,),
                                        name="ingest", daemon=True)
        self._ingest.start()
        port = free_port()
        self._api = _QuietServer(uvicorn.Config(create_app(self.db), host="127.0.0.1",
                                                port=port, log_level="warning"))
        self._api_task = asyncio.create_task(self._api.serve())
        while not self._api.started and not self._api_task.done():
            await asyncio.sleep(0.05)
        self.api_url = f"http://127.0.0.1:{port}"

    # a demo operator and a demo tenant (Anna Muster, account "muster") of the console
    CONSOLE_LOGINS = (("operator@demo.example", "demo-operator", "operator", None),
                      ("anna@demo.example", "demo-tenant-anna", "tenant", "muster"))

    def _console_users(self) -> None:
        from sitegate.cloud.auth import users
        from sitegate.demo.site import SITE_ID

        for email, password, role, account in self.CONSOLE_LOGINS:
            users.add_user(self.engine, email, email.split("@")[0].title(),
                           users.check_role(role, SITE_ID, account), "en", password)

    async def stop(self) -> None:
        """Ingest finishes what it has received (and acknowledges it), then the API stops."""
        self._stop.set()
        if self._ingest is not None:
            await asyncio.to_thread(self._ingest.join, 30)
        if self._api is not None and self._api_task is not None:
            self._api.should_exit = True
            await asyncio.gather(self._api_task, return_exceptions=True)

    # -- what the cloud has ----------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            readings = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
            sessions = conn.execute(
                text("SELECT count(DISTINCT session_id) FROM sessions")).scalar_one()
        return int(readings), int(sessions)

    async def counts(self) -> tuple[int, int]:
        return await asyncio.to_thread(self._counts)

    # -- billing ---------------------------------------------------------------------------

    def bill(self, site: str, tz: str) -> dict[str, Any]:
        """Bill this month from what the cloud received, issue the drafts, write the PDFs.

        Run again in the same --dir, the month has more data: an invoice issued by the
        earlier run is cancelled and replaced, as an operator would correct it."""
        period = datetime.now(ZoneInfo(tz)).strftime("%Y-%m")
        result = ops.run_bill(self.engine, site, period, interim=True)
        replaced = [d["number"] for d in result["issued_differs"]]
        if replaced:
            for number in replaced:
                ops.act(self.engine, site, number, "cancel")
            result = ops.run_bill(self.engine, site, period, interim=True)
        numbers = sorted(result["created"] + result["updated"] + result["unchanged"])
        pdfs: list[tuple[Path, dict[str, Any]]] = []
        for number in numbers:
            inv = ops.invoice(self.engine, site, number)
            if inv["state"] == "draft":
                inv = ops.act(self.engine, site, number, "issue")
            path = self.workdir / f"invoice-{period}-{number}.pdf"
            path.write_bytes(ops.pdf(self.engine, site, number))
            pdfs.append((path, inv))
        return {"period": period, "pdfs": pdfs, "cancelled": replaced,
                "summary": result["summary"]}
