"""Shutting a revoked gateway out of a connection it already has.

Mosquitto checks the CRL when a connection is made (and reads a new one on SIGHUP), never
for one already open. The cloud cuts it: it connects to the broker's cloud listener under
the gateway's client id and leaves at once, an MQTT session takeover, after which the broker
has closed the gateway's connection (client ids are one namespace across a broker's
listeners; only the cloud listener lets a client choose its id). ``revoke --broker`` does
it once; until the broker has reloaded the CRL the gateway can come back, so ``serve``
(``Gatekeeper``) refuses whatever a revoked gateway still sends and cuts it again each time.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine, select

from sitegate.cloud.store import tables as t
from sitegate.sync import protocol as p

log = structlog.get_logger(__name__)

KICK_EVERY = 2.0  # seconds: at most one cut per gateway in this time
REFRESH = 5.0  # seconds between reads of the revoked gateways
QUEUE = 256  # cuts waiting; more are dropped (the next message asks again)


def kick(broker_url: str, auth: object, gateway_id: str) -> None:
    """Close ``gateway_id``'s open connection, if any (OSError if the broker is not
    reachable or refuses the cloud)."""
    from sitegate.cloud.ingest.downlink import _client

    c = _client(broker_url, auth, client_id=gateway_id)  # type: ignore[arg-type]
    c.disconnect()  # clean start, no session expiry: nothing of it stays behind
    c.loop_stop()


def revoked_ids(engine: Engine) -> frozenset[str]:
    with engine.connect() as conn:
        return frozenset(conn.execute(select(t.gateway_identities.c.gateway_id).where(
            t.gateway_identities.c.revoked_at.is_not(None))).scalars())


class Gatekeeper:
    """In ``serve``: messages of revoked gateways are refused (one dead letter per cut, the
    rest counted) and their connection cut. ``refuses`` runs on the MQTT network thread and
    does no I/O; reads and cuts happen in this one's own thread."""

    def __init__(self, engine: Engine, cut: Callable[[str], None],
                 dead_letter: Callable[[str, str, bytes], None]) -> None:
        self.engine = engine
        self.cut = cut
        self.dead_letter = dead_letter
        self.revoked: frozenset[str] = frozenset()
        self.refused = 0
        self._last: dict[str, float] = {}
        self._todo: queue.Queue[tuple[str, str, bytes] | None] = queue.Queue(QUEUE)

    def refuses(self, topic: str, payload: bytes, retained: bool = False) -> bool:
        try:
            gateway_id, _ = p.parse_topic(topic)
        except p.ProtocolError:
            return False
        if gateway_id not in self.revoked:
            return False
        if retained:  # its last status from before: no connection to cut
            return True
        self.refused += 1
        now = time.monotonic()
        if now - self._last.get(gateway_id, -KICK_EVERY) >= KICK_EVERY:
            self._last[gateway_id] = now
            with contextlib.suppress(queue.Full):
                self._todo.put_nowait((gateway_id, topic, payload))
        return True

    def start(self, stop: threading.Event) -> threading.Thread:
        self.revoked = revoked_ids(self.engine)
        th = threading.Thread(target=self._run, args=(stop,), name="gatekeeper", daemon=True)
        th.start()
        return th

    def _run(self, stop: threading.Event) -> None:
        next_read = time.monotonic() + REFRESH
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                item = self._todo.get(timeout=max(0.0, next_read - time.monotonic()))
                if item is not None:
                    self._shut_out(*item)
            if time.monotonic() >= next_read:
                try:
                    self.revoked = revoked_ids(self.engine)
                except Exception:  # noqa: BLE001 - database down: keep the last list
                    log.exception("revoked.read_failed")
                next_read = time.monotonic() + REFRESH

    def _shut_out(self, gateway_id: str, topic: str, payload: bytes) -> None:
        log.warning("revoked.shut_out", gateway=gateway_id, refused=self.refused)
        try:
            self.dead_letter(topic, f"gateway {gateway_id} is revoked: refused, its "
                             "connection cut", payload)
        except Exception:  # noqa: BLE001 - the cut matters more than the record
            log.exception("revoked.dead_letter_failed")
        try:
            self.cut(gateway_id)
        except (OSError, ValueError) as exc:
            log.warning("revoked.cut_failed", gateway=gateway_id, reason=str(exc))
