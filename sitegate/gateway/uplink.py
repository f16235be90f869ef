"""The uplink with the gateway's own identity: enrol from the claim token in the state
directory if not enrolled yet (retrying, the daemon meanwhile buffers), then run the sync
client over mutual TLS; renew the certificate before it expires and reconnect with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from sitegate.firmware_tools.enrol import EnrolError, enrol, provision_url, renew
from sitegate.firmware_tools.identity import Identity, IdentityError
from sitegate.sync.config import MqttConfig

log = structlog.get_logger(__name__)

RETRY_MIN, RETRY_MAX = 2.0, 600.0
RENEW_CHECK = 6 * 3600.0  # seconds between looks at the certificate's expiry


def uses_identity(cfg: MqttConfig) -> bool:
    """Whether the uplink authenticates with the box's enrolled identity (enrolling first
    from the claim token in the state directory): an mqtts broker, and neither client
    certificate files nor a username configured."""
    return cfg.broker.startswith("mqtts://") and cfg.cert_file is None and not cfg.username


class Uplink:
    """A daemon service (start/stop/health/wake) around the sync client."""

    health_name = "SyncClient"  # the status CLI and tests look for the sync client here

    def __init__(self, cfg: MqttConfig, gateway_id: str, identity: Identity,
                 make_sync: Callable[[MqttConfig], Any]) -> None:
        self.cfg = cfg
        self.gateway_id = gateway_id
        self.identity = identity
        self.make_sync = make_sync
        self.sync: Any = None
        self.problem: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="uplink")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.sync is not None:
            await self.sync.stop()

    def wake(self) -> None:
        if self.sync is not None:
            self.sync.wake()

    def health(self) -> dict[str, Any]:
        if self.sync is None:  # the sync client's shape, so that status shows it as is
            return {"connected": False, "disconnected_since": None, "backlog": {},
                    "last_ack": {}, "in_flight": {},
                    "enrolment": f"pending: {self.problem or 'first attempt'}"}
        return {**self.sync.health(), "identity": self._cert_health()}

    def _cert_health(self) -> dict[str, Any]:
        try:
            cert = self.identity.certificate()
        except IdentityError as exc:
            return {"problem": str(exc)}
        return {"not_after": cert.not_valid_after_utc.isoformat(), "problem": self.problem}

    async def _run(self) -> None:
        delay = RETRY_MIN
        while not self.identity.enrolled():
            if await self._try(self._enrol):
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        await self._renew_if_due()  # a box that was off for weeks
        await self._start_sync()
        while True:
            await asyncio.sleep(RENEW_CHECK)
            if await self._renew_if_due():
                # paho loads the certificate when the client is made: a new client.
                await self.sync.stop()
                await self._start_sync()

    async def _renew_if_due(self) -> bool:
        try:
            due = self.identity.renewal_due()
        except IdentityError as exc:
            self.problem = str(exc)
            return False
        return due and await self._try(self._renew)

    async def _start_sync(self) -> None:
        self.sync = self.make_sync(self.identity.mqtt_config(self.cfg))
        await self.sync.start()

    async def _try(self, step: Callable[[], Any]) -> bool:
        try:
            await asyncio.to_thread(step)
        except (EnrolError, IdentityError, OSError) as exc:
            self.problem = str(exc)
            log.warning("uplink.enrolment_failed", error=str(exc))
            return False
        self.problem = None
        return True

    def _enrol(self) -> None:
        try:
            token = self.identity.token_file.read_text().strip()
        except OSError:
            raise EnrolError(f"not enrolled: put a claim token (sitegate-cloud gateways "
                             f"claim-token) in {self.identity.token_file}") from None
        enrol(self.identity, self.gateway_id, token, provision_url(self.cfg))

    def _renew(self) -> None:
        renew(self.identity, self.gateway_id, provision_url(self.cfg))
