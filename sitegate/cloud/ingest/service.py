"""The ingest process: an MQTT 5 client on the shared subscription, one writer thread.

paho's network thread only queues messages; a worker thread takes what is waiting (up to
GROUP_* messages, bytes and a short linger), writes it in one transaction, commits and
then publishes all its acks, so a slow commit never delays keepalives. Several processes
share the uplink, status included, through ``$share/sitegate-ingest/...``: each message is
stored by one process.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sitegate.cloud.ingest.inbox import Inbox
from sitegate.cloud.ingest.writer import MAX_MESSAGE_BYTES, Plausibility, Writer
from sitegate.cloud.store.db import make_engine
from sitegate.common import provisioning as pv
from sitegate.sync import protocol as p

log = structlog.get_logger(__name__)

PROVISION_QUEUE = 64  # enrolment requests waiting; more are dropped
# One transaction takes what is waiting, up to these bounds, or what comes within the
# linger once the first message is there: a busy process commits (and fsyncs) per group,
# a quiet one answers a lone batch after GROUP_LINGER.
GROUP_MESSAGES = 200
GROUP_BYTES = 8 * 1024 * 1024
GROUP_LINGER = 0.02


CLOUD_TLS_PORT = 8885  # the broker's cloud listener (see sitegate.cloud.auth.broker_config)


def parse_broker(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) from mqtt://host[:port] or mqtts://host[:port]; mqtts defaults to
    the cloud's own listener, not the gateways' 8883 (which forces the client id)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"broker URL {url!r}: expected mqtt://host[:port] or mqtts://...")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (CLOUD_TLS_PORT if tls else 1883), tls


def _no_delay(_c: mqtt.Client, _u: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Client(mqtt.Client):
    """paho's client, keeping why the last connection attempt failed (paho's own
    on_connect_fail callback is told nothing), so a person sees each failure's reason."""

    last_error: BaseException | None = None

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_error = exc
            raise


RETRY_MIN, RETRY_MAX = 1, 30  # seconds between connection attempts (paho doubles them)


class IngestService:
    def __init__(
        self,
        db_url: str,
        broker_url: str,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        provisioner: Any = None,
        plausible: Plausibility | None = None,
        gatekeeper: Any = None,
    ) -> None:
        self.writer = Writer(make_engine(db_url), max_message_bytes,
                             plausible or Plausibility())
        self.host, self.port, tls = parse_broker(broker_url)
        # A "/" no gateway id has: on the broker, client ids are one namespace and a
        # gateway's is its certificate's CN, so no gateway can take this one over.
        cid = client_id or f"sitegate-ingest/{socket.gethostname()}/{os.getpid()}-" \
                           f"{uuid.uuid4().hex[:6]}"
        self.client = _Client(CallbackAPIVersion.VERSION2, client_id=cid,
                              protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        # Enrolment requests (sitegate.cloud.auth.enrolment.Provisioner), when it has keys.
        self.provisioner = provisioner
        # Revoked gateways still connected (sitegate.cloud.auth.revocation.Gatekeeper).
        self.gatekeeper = gatekeeper
        self.client.reconnect_delay_set(RETRY_MIN, RETRY_MAX)
        self._retry_in: float | None = None
        # Acks are small: without TCP_NODELAY Nagle holds each ~40 ms (delayed ACK).
        self.client.on_socket_open = _no_delay
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.inbox = Inbox()
        # Enrolment requests come from anonymous clients: their own small lane and thread,
        # dropped when full (the gateway asks again), so a flood never holds up the uplink.
        self.provision_inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue(
            maxsize=PROVISION_QUEUE)
        self.provision_dropped = 0
        self.connected = threading.Event()
        self.processed = 0

    # paho callbacks (network thread) -------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                    _props: Properties | None = None) -> None:
        if rc.is_failure:
            log.error("ingest.connect_refused", reason=str(rc))
            return
        subs = p.ingest_subscriptions()
        if self.provisioner is not None:
            subs.append(f"$share/{p.INGEST_SHARE_GROUP}/{pv.REQUESTS}")
        client.subscribe([(s, 1) for s in subs])
        self._retry_in = None  # paho starts over at RETRY_MIN after a good connection
        self.connected.set()
        log.info("ingest.connected", broker=f"{self.host}:{self.port}")

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        # a reconnect after a lost connection: paho waited RETRY_MIN before the first
        # attempt and doubles the wait after each failure, up to RETRY_MAX
        self._retry_in = (2 * RETRY_MIN if self._retry_in is None
                          else min(self._retry_in * 2, RETRY_MAX))
        error = self.client.last_error
        log.warning("ingest.connect_failed", broker=f"{self.host}:{self.port}",
                    reason=(getattr(error, "strerror", None) or str(error)) if error else "?",
                    retry_in=f"{self._retry_in:g} s")

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                       _props: Properties | None = None) -> None:
        self.connected.clear()
        # our own disconnect() (stop) is normal; anything else is worth a warning
        level = log.info if getattr(rc, "value", rc) == 0 else log.warning
        level("ingest.disconnected", reason=str(rc))

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self.gatekeeper is not None and self.gatekeeper.refuses(msg.topic, msg.payload,
                                                                   msg.retain):
            return
        if self.provisioner is not None and msg.topic.startswith(pv.PREFIX + "/"):
            try:
                self.provision_inbox.put_nowait((msg.topic, bytes(msg.payload)))
            except queue.Full:
                self.provision_dropped += 1
                if self.provision_dropped % 1000 == 1:  # a flood: one line per thousand
                    log.warning("enrol.dropped", total=self.provision_dropped)
            return
        self.inbox.put((msg.topic, bytes(msg.payload)))

    # the writer thread -----------------------------------------------------------------------

    def _work(self) -> None:
        # Fault-test hook: die by SIGKILL right after the Nth commit, before its acks leave.
        crash_after = int(os.environ.get("SITEGATE_INGEST_KILL_AFTER_COMMITS", "0"))
        commits = 0
        stopping = False
        while not stopping:
            items = self.inbox.get_many(GROUP_MESSAGES, GROUP_BYTES, GROUP_LINGER)
            if items and items[-1] is None:
                stopping = True
                items.pop()
            messages = [item for item in items if item is not None]
            if not messages:
                continue
            try:
                out = self.writer.handle_many(messages)
            except Exception:  # noqa: BLE001 - e.g. database down: never lose the loop
                log.exception("ingest.write_failed", messages=len(messages))
                continue  # not acked: the gateways resend after their timeout
            commits += 1
            if crash_after and commits >= crash_after:
                log.warning("ingest.killed_after_commit", messages=len(messages),
                            acks=len(out))
                os.kill(os.getpid(), signal.SIGKILL)
            for msg in out:
                self.client.publish(msg.topic, msg.payload, qos=1)
            self.processed += len(messages)

    def _provision_work(self) -> None:
        while (item := self.provision_inbox.get()) is not None:
            try:
                out = self.provisioner.handle(*item)
            except Exception:  # noqa: BLE001 - e.g. database down: the gateway asks again
                log.exception("enrol.failed")
                continue
            for msg in out:
                self.client.publish(msg.topic, msg.payload, qos=1)

    def _connect(self, stop: threading.Event) -> bool:
        """The first connection, saying at once that it is connecting, then each failure
        with its reason and when the next attempt comes; False when stopped before."""
        broker, delay = f"{self.host}:{self.port}", RETRY_MIN
        log.info("ingest.connecting", broker=broker)
        while True:
            try:
                self.client.connect(self.host, self.port, keepalive=30, clean_start=True)
                return True
            except OSError as exc:
                log.warning("ingest.connect_failed", broker=broker,
                            reason=exc.strerror or str(exc), retry_in=f"{delay:g} s")
            if stop.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX)

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set."""
        worker = threading.Thread(target=self._work, name="ingest-writer", daemon=True)
        worker.start()
        enrol = threading.Thread(target=self._provision_work, name="ingest-enrol", daemon=True)
        if self.provisioner is not None:
            enrol.start()
        if self.gatekeeper is not None:
            self.gatekeeper.start(stop)
        try:
            if self._connect(stop):
                self.client.loop_start()  # paho reconnects from here on
                stop.wait()
        finally:
            self.inbox.put(None)
            worker.join(timeout=30)
            if enrol.is_alive():
                with contextlib.suppress(queue.Full):
                    self.provision_inbox.put(None, timeout=5)
                enrol.join(timeout=10)
            self.client.disconnect()
            self.client.loop_stop()
            log.info("ingest.stopped", processed=self.processed)
