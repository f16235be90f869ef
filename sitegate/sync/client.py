"""The gateway's MQTT client: uplink batches from the buffer, acks, downlink config/commands.

Threads: paho's network loop runs in its own thread (connect, reconnect with tenacity's
jittered exponential backoff, keepalive); everything else runs on the asyncio loop that
called ``start()``. Messages cross over with ``call_soon_threadsafe``.

Uplink per stream: at each (re)connect, rows up to the buffer's end are *backlog* and
drain at ``drain_rate``; rows appended after are *live* and go out at once on their own
window, so a long backlog never delays live data. A row counts as sent only when the
cloud's ack (a contiguous high-water mark) covers it; a batch without any answer within
its ack timeout is sent again. The cloud writes idempotently, so resending is always safe.

At fleet scale two things keep the cloud out of a resend snowball. The live readings of a
quarter-hour cycle go out at a fixed offset (from the gateway id) within ``uplink_spread``
after the quarter-hour, so a fleet's cycles arrive spread out. And the ack timeout adapts
like TCP's retransmission timer: at least ``ack_timeout``, else the acks' smoothed round
trip plus four deviations, longer for a batch sent behind others in flight, doubled after
each expiry (up to ``ack_timeout_max``) and back to normal with the next timely ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from sitegate.common import signing
from sitegate.sync import protocol as p
from sitegate.sync.config import MqttConfig
from sitegate.sync.downlink_state import FILE as DOWNLINK_STATE_FILE
from sitegate.sync.downlink_state import DownlinkState

log = structlog.get_logger(__name__)

QUARTER_HOUR = 900  # seconds: the meters' aligned cycle, the fleet's burst

# Set while a cloud command runs: where it reports progress (a CommandResult with
# ``progress`` on its result topic). The handler finds it here, without new arguments.
command_progress: ContextVar[Callable[[dict[str, Any]], None] | None] = ContextVar(
    "command_progress", default=None)


class EntryLike(Protocol):
    seq: int
    payload: str  # the row's JSON text, as stored


class BufferLike(Protocol):
    """What sync needs of the gateway's buffer (sitegate.gateway.buffer.Buffer fits).

    It may also have an ``epoch`` attribute (the buffer file's id, protocol.LEGACY_EPOCH
    when it has none): batches carry it and acks for any other epoch are ignored.
    """

    def pending(self, stream: str, limit: int = ..., after: int | None = ...
                ) -> Sequence[EntryLike]: ...
    def ack(self, stream: str, upto: int) -> int: ...
    def last_seq(self, stream: str) -> int: ...
    def acked_upto(self, stream: str) -> int: ...
    def append_event(self, kind: str, severity: str = ..., **fields: Any) -> None: ...


# Gets {"version", "config"}; returns None when applied, else why not (may be async).
OnConfig = Callable[[dict[str, Any]], str | None | Awaitable[str | None]]
OnBadges = Callable[[dict[str, Any]], None]
OnCommand = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class _SessionEnded(Exception):
    """The MQTT connection failed or dropped; the network thread reconnects."""


@dataclass(slots=True)
class _Flight:
    first: int
    last: int
    sent_at: float
    backlog: bool
    timeout: float = 30.0  # seconds without an ack before it is sent again
    tries: int = 0  # resends so far: each one doubles the wait

    confirmed: bool = False  # the cloud committed it (a gap below may hold back the mark)


@dataclass(slots=True)
class _Stream:
    name: str
    acked: int = 0
    last_seq: int = 0
    backlog_next: int = 1  # next backlog seq to send
    backlog_end: int = 0  # the buffer's end at connect: beyond it is live
    live_next: int = 1
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)
    flights: dict[int, _Flight] = field(default_factory=dict)
    last_ack_at: str | None = None
    sent_upto: int = 0  # highest seq published in this epoch: an ack beyond it is forged
    srtt: float | None = None  # smoothed ack round trip, seconds (as TCP's RTO, RFC 6298)
    rttvar: float = 0.0
    backoff: float = 1.0  # doubles after each expiry, back to 1 with a timely ack


class SyncClient:
    def __init__(
        self,
        cfg: MqttConfig,
        gateway_id: str,
        buffer: BufferLike,
        *,
        on_config: OnConfig | None = None,
        on_badges: OnBadges | None = None,
        on_command: OnCommand | None = None,
        applied_config_version: int | None = None,
        state_dir: str | Path | None = None,
    ) -> None:
        """``state_dir``: the gateway's state directory. The cloud's downlink key is read
        from ``identity/downlink.pub`` in it and executed commands are recorded there;
        without it (or without the key) no config, badge list or command is accepted."""
        self.cfg = cfg
        self.gateway_id = p.check_gateway_id(gateway_id)
        self.buffer = buffer
        self.epoch = p.check_epoch(getattr(buffer, "epoch", p.LEGACY_EPOCH))
        self.on_config = on_config
        self.on_badges = on_badges
        self.on_command = on_command
        # What the gateway runs (persisted by it): the retained copy of it is not reapplied.
        self.applied_config_version = applied_config_version
        self.config_rejected: dict[str, Any] | None = None
        self.badges_version: int | None = None
        self._streams = {s: _Stream(s) for s in p.STREAMS}
        self._connected = False
        self._connected_since: str | None = None
        self._disconnected_since: str | None = datetime.now(UTC).isoformat()
        self._generation = 0  # bumps at every connect: stale work is dropped
        self._closing = threading.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._cmd_tasks: set[asyncio.Task[Any]] = set()
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._downlink_key: Any = None  # Ed25519PublicKey once loaded at start()
        self._downlink: DownlinkState = DownlinkState(None)
        self._downlink_broken: str | None = None  # the executed-command record is unreadable
        self._cmd_order = asyncio.Lock()
        self.downlink_refused = 0
        self.last_refused: dict[str, Any] | None = None
        self._net: threading.Thread | None = None
        self.bytes_sent = 0
        self.batches_sent = 0
        self.resends = 0
        # Where in the window after each quarter-hour the live readings go: fixed per id.
        self.uplink_offset = uplink_offset(self.gateway_id, cfg.uplink_spread)
        # More health for the retained status (the daemon's buffer writer), set by the daemon.
        self.status_extra: Callable[[], dict[str, Any]] | None = None
        self.client = self._make_client()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for st in self._streams.values():
            st.acked = await asyncio.to_thread(self.buffer.acked_upto, st.name)
            st.last_seq = await asyncio.to_thread(self.buffer.last_seq, st.name)
            st.sent_upto = st.acked
        await asyncio.to_thread(self._load_downlink)
        self._net = threading.Thread(target=self._network_main, name="sync-mqtt", daemon=True)
        self._net.start()
        self._tasks = [asyncio.create_task(self._pump_forever(), name="sync-pump"),
                       asyncio.create_task(self._status_forever(), name="sync-status")]

    async def stop(self) -> None:
        """Say goodbye (retained offline status), disconnect, stop the threads."""
        self._stopping = True  # Python 3.11's wait_for can swallow a cancel: also a flag
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=10)
        if self._connected:
            info = self.client.publish(p.topic(self.gateway_id, p.LEAF_STATUS),
                                       self._status_payload(p.STATUS_OFFLINE), qos=1, retain=True)
            await asyncio.to_thread(_wait_published, info, 5.0)
        self._closing.set()
        # In a worker thread: paho may hold its locks while the network thread is stuck in a
        # connect or TLS handshake, and the event loop must never wait on that.
        await asyncio.to_thread(self.client.disconnect)
        if self._net is not None:
            await asyncio.to_thread(self._net.join, 10)

    def downlink_key_path(self) -> Path | None:
        return self._state_dir / "identity" / "downlink.pub" if self._state_dir else None

    def _load_downlink(self) -> None:
        """The cloud's public key and the record of executed commands; said once, here."""
        path = self.downlink_key_path()
        if path is None or not path.exists():
            log.warning("sync.no_downlink_key", path=str(path) if path else None,
                        effect="config, badge lists and commands from the cloud are refused "
                               "until the cloud's downlink.pub is installed (enrolment)")
        else:
            try:
                self._downlink_key = signing.load_public(path)
            except (OSError, ValueError) as exc:
                log.error("sync.bad_downlink_key", path=str(path), error=str(exc),
                          effect="config, badge lists and commands from the cloud are refused")
        if self._state_dir is None:
            return
        try:
            self._downlink = DownlinkState(self._state_dir / DOWNLINK_STATE_FILE)
        except (OSError, ValueError) as exc:
            self._downlink_broken = str(exc)
            log.error("sync.downlink_state_unreadable", error=str(exc),
                      effect="commands are refused until it is repaired or removed")

    def wake(self) -> None:
        """New rows are in the buffer: look now (thread-safe; the daemon calls it per cycle)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def health(self) -> dict[str, Any]:
        return {
            "connected": self._connected,
            "connected_since": self._connected_since,
            "disconnected_since": self._disconnected_since,
            "epoch": self.epoch,
            "backlog": {s.name: max(s.last_seq - s.acked, 0) for s in self._streams.values()},
            "last_ack": {s.name: {"upto": s.acked, "at": s.last_ack_at}
                         for s in self._streams.values()},
            "in_flight": {s.name: len(s.flights) for s in self._streams.values()},
            "ack_timeout": {s.name: round(self._ack_timeout(s), 1)
                            for s in self._streams.values()},
            "resends": self.resends,
            "uplink_offset": round(self.uplink_offset, 1),
            "sent_upto": {s.name: s.sent_upto for s in self._streams.values()},
            "applied_config_version": self.applied_config_version,
            "config_rejected": self.config_rejected,
            "badges_version": self.badges_version,
            "downlink": {"key": str(self.downlink_key_path()) if self._downlink_key else None,
                         "refused": self.downlink_refused, "last_refused": self.last_refused},
        }

    # -- the network thread ----------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        # The client id is the gateway id: the broker's mTLS listener forces it to the
        # certificate's CN (= the gateway id), and the persistent session is keyed on it.
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.gateway_id,
                        protocol=mqtt.MQTTv5)
        if self.cfg.username:
            c.username_pw_set(self.cfg.username, self.cfg.password)
        _, _, tls = self.cfg.host_port()
        if tls:
            c.tls_set(ca_certs=self.cfg.ca_file, certfile=self.cfg.cert_file,
                      keyfile=self.cfg.key_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.will_set(p.topic(self.gateway_id, p.LEAF_STATUS),
                   p.dumps({"v": p.PROTOCOL_VERSION, "state": p.STATUS_OFFLINE}),
                   qos=1, retain=True)
        c.max_inflight_messages_set(self.cfg.max_inflight * len(p.STREAMS) * 2 + 20)
        # Small acks and batches must not wait for Nagle behind a delayed TCP ACK (~40 ms).
        c.on_socket_open = _no_delay
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def _network_main(self) -> None:
        # Full jitter (a random delay up to the exponential bound) so a fleet that lost the
        # broker together does not come back together.
        retrying = Retrying(
            wait=wait_random_exponential(multiplier=self.cfg.reconnect_min,
                                         max=self.cfg.reconnect_max),
            retry=retry_if_exception_type((OSError, _SessionEnded, mqtt.WebsocketConnectionError)),
            stop=lambda _state: self._closing.is_set(),
            sleep=self._closing.wait,
            before_sleep=lambda s: log.warning(
                "sync.reconnect", attempt=s.attempt_number,
                delay=round(s.next_action.sleep, 2) if s.next_action else None,
                error=str(s.outcome.exception()) if s.outcome else None),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    began = time.monotonic()
                    try:
                        self._one_session()
                    finally:
                        if time.monotonic() - began > 60:
                            attempt.retry_state.attempt_number = 1  # was up: start short
        except Exception as exc:  # noqa: BLE001 - only when closing
            if not self._closing.is_set():
                log.exception("sync.network_thread_died", error=str(exc))

    def _one_session(self) -> None:
        host, port, _ = self.cfg.host_port()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry
        self._connack: ReasonCode | None = None
        self.client.connect(host, port, keepalive=self.cfg.keepalive, clean_start=False,
                            properties=props)
        while not self._closing.is_set():
            rc = self.client.loop(timeout=0.5)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise _SessionEnded(mqtt.error_string(rc))
            if self._connack is not None and self._connack.is_failure:
                self.client.disconnect()
                raise _SessionEnded(f"broker refused: {self._connack}")
        self.client.loop(timeout=0.5)  # flush the DISCONNECT

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode,
                    _props: Properties | None = None) -> None:
        self._connack = rc
        if rc.is_failure:
            log.error("sync.connect_refused", reason=str(rc))
            return
        client.subscribe([(t, 1) for t in p.gateway_subscriptions(self.gateway_id)])
        client.publish(p.topic(self.gateway_id, p.LEAF_STATUS),
                       self._status_payload(p.STATUS_ONLINE), qos=1, retain=True)
        log.info("sync.connected", session_present=getattr(flags, "session_present", None))
        self._call(self._connected_now)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                       _props: Properties | None = None) -> None:
        # our own disconnect() (stop) is normal; anything else is worth a warning
        level = log.info if getattr(rc, "value", rc) == 0 else log.warning
        level("sync.disconnected", reason=str(rc))
        self._call(self._disconnected_now)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._call(self._dispatch, msg.topic, bytes(msg.payload))

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    # -- uplink ------------------------------------------------------------------------------

    def _connected_now(self) -> None:
        self._connected = True
        self._connected_since = datetime.now(UTC).isoformat()
        self._disconnected_since = None
        self._generation += 1
        for st in self._streams.values():
            st.flights.clear()
            st.backlog_next = st.acked + 1
            st.backlog_end = st.last_seq  # refreshed by the first pump pass
            st.live_next = -1  # "set at the first pump pass"
        self.wake()

    def _disconnected_now(self) -> None:
        if self._connected:
            self._disconnected_since = datetime.now(UTC).isoformat()
        self._connected = False
        self._connected_since = None

    async def _pump_forever(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            timeout = self.cfg.poll_interval
            if self._connected:
                generation = self._generation
                for st in self._streams.values():
                    try:
                        timeout = min(timeout, await self._pump(st, generation))
                    except Exception:  # noqa: BLE001 - a buffer hiccup must not end sync
                        log.exception("sync.pump_failed", stream=st.name)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _pump(self, st: _Stream, generation: int) -> float:
        """Send what the windows allow; returns how soon to look again (seconds)."""
        st.last_seq = await asyncio.to_thread(self.buffer.last_seq, st.name)
        if st.live_next < 0:  # first pass after connect: fix the backlog/live boundary
            st.backlog_end = st.last_seq
            st.live_next = st.last_seq + 1
            log.debug("sync.lanes", stream=st.name, acked=st.acked, backlog_end=st.backlog_end)
        now = time.monotonic()
        for f in list(st.flights.values()):
            if f.last <= st.acked:
                del st.flights[f.first]
            elif not f.confirmed and now - f.sent_at > f.timeout:
                log.warning("sync.resend", stream=st.name, first=f.first, last=f.last,
                            waited=round(now - f.sent_at, 1))
                # New batches wait as long as this one will, until a timely ack.
                st.backoff = max(st.backoff, 2.0 ** (f.tries + 1))
                # Counted once it went out (not when the link dropped meanwhile), in the same
                # step as its flight's new tries, so health never shows the two apart.
                if await self._send(st, f.first, f.last - f.first + 1, f.backlog, generation,
                                    tries=f.tries + 1):
                    self.resends += 1
        soon = self.cfg.poll_interval
        hold = self._live_hold(st)
        if hold > 0:
            soon = min(soon, hold)
        # Live rows first, on their own window.
        while hold <= 0 and self._window(st, backlog=False) and st.live_next <= st.last_seq:
            n = await self._send(st, st.live_next, self.cfg.batch_rows, False, generation)
            if not n:
                break
            st.live_next += n
        # Then the backlog, at the drain rate.
        st.backlog_next = max(st.backlog_next, st.acked + 1)
        rate = self.cfg.drain_rate
        if rate:
            cap = max(self.cfg.batch_rows, rate)
            st.tokens = min(cap, st.tokens + (now - st.refilled) * rate)
        st.refilled = now
        while self._window(st, backlog=True) and st.backlog_next <= st.backlog_end:
            want = min(self.cfg.batch_rows, st.backlog_end - st.backlog_next + 1)
            if rate and st.tokens < want:
                soon = min(soon, (want - st.tokens) / rate)
                break
            n = await self._send(st, st.backlog_next, want, True, generation)
            if not n:
                break
            st.backlog_next += n
            if rate:
                st.tokens -= n
        if st.flights:
            due = min(f.sent_at + f.timeout for f in st.flights.values() if not f.confirmed) \
                if any(not f.confirmed for f in st.flights.values()) else now + soon
            soon = min(soon, max(0.05, due - now))
        return soon

    def _live_hold(self, st: _Stream) -> float:
        """Seconds to hold this stream's live rows: readings only, a cycle of at least a
        batch, within this gateway's offset after the quarter-hour (wall clock)."""
        if st.name != p.STREAM_READINGS or st.last_seq - st.live_next + 1 < self.cfg.batch_rows:
            return 0.0
        return live_hold(self.uplink_offset, time.time())

    def _ack_timeout(self, st: _Stream, ahead: int = 0, tries: int | None = None) -> float:
        """How long a batch waits for its ack: at least ack_timeout, else the measured round
        trip plus four deviations; behind ``ahead`` others in flight, longer (their acks
        come first); doubled for each resend of it (``tries``; a new batch: the stream's
        backoff); at most ack_timeout_max."""
        rto = self.cfg.ack_timeout
        if st.srtt is not None:
            rto = max(rto, st.srtt + 4 * st.rttvar)
        rto *= 1 + ahead / self.cfg.max_inflight
        backoff = st.backoff if tries is None else 2.0 ** tries
        return min(rto * backoff, max(self.cfg.ack_timeout_max, self.cfg.ack_timeout))

    @staticmethod
    def _sample(st: _Stream, rtt: float) -> None:
        """A timely ack's round trip (RFC 6298's smoothing)."""
        if st.srtt is None:
            st.srtt, st.rttvar = rtt, rtt / 2
        else:
            st.rttvar = 0.75 * st.rttvar + 0.25 * abs(st.srtt - rtt)
            st.srtt = 0.875 * st.srtt + 0.125 * rtt
        st.backoff = 1.0

    def _window(self, st: _Stream, backlog: bool) -> bool:
        busy = sum(1 for f in st.flights.values() if f.backlog == backlog and not f.confirmed)
        return busy < self.cfg.max_inflight and self._connected

    async def _send(self, st: _Stream, first: int, limit: int, backlog: bool,
                    generation: int, tries: int = 0) -> int:
        """Publish rows from ``first`` (at most ``limit`` and ``batch_bytes``); returns count."""
        rows = await asyncio.to_thread(self.buffer.pending, st.name, limit, first - 1)
        texts: list[str] = []
        size = 0
        expect = first
        for row in rows:
            if row.seq != expect:  # never happens with the gateway's buffer; never guess
                break
            if texts and size + len(row.payload) > self.cfg.batch_bytes:
                break
            texts.append(row.payload)
            size += len(row.payload) + 1
            expect += 1
        if not texts or generation != self._generation or not self._connected:
            return 0
        payload = p.encode_batch(st.name, first, texts, self.epoch)
        self.client.publish(p.topic(self.gateway_id, st.name), payload, qos=1)
        last = first + len(texts) - 1
        st.sent_upto = max(st.sent_upto, last)
        ahead = sum(1 for f in st.flights.values() if not f.confirmed and f.first < first)
        st.flights[first] = _Flight(first, last, time.monotonic(), backlog,
                                    self._ack_timeout(st, ahead, tries or None), tries)
        log.debug("sync.sent", stream=st.name, first=first, last=last, backlog=backlog)
        self.bytes_sent += len(payload)
        self.batches_sent += 1
        return len(texts)

    async def _on_ack(self, payload: bytes) -> None:
        try:
            ack = p.decode_ack(payload)
        except p.ProtocolError as exc:
            log.warning("sync.bad_ack", error=str(exc))
            return
        if ack.epoch != self.epoch:
            # A mark of another buffer file (the one before a corrupt buffer was replaced,
            # or a late ack from then): its sequence numbers are not ours.
            log.info("sync.ack_other_epoch", stream=ack.stream, epoch=ack.epoch,
                     ours=self.epoch, upto=ack.upto)
            return
        st = self._streams[ack.stream]
        flight = st.flights.get(ack.first) if ack.first is not None else None
        upto = ack.upto
        if max(ack.upto, ack.last or 0) > st.sent_upto:
            # Nothing beyond what this gateway published can have been committed: a forged
            # (or confused) ack would make it drop rows the cloud never had. After a restart
            # the cloud's mark may be ahead (rows the previous process sent, their ack lost):
            # an ack answering a batch in flight is taken up to what was sent, so it goes on.
            answers = flight is not None and ack.last == flight.last
            (log.info if answers else log.warning)(
                "sync.ack_beyond_sent", stream=ack.stream, upto=ack.upto, first=ack.first,
                last=ack.last, sent_upto=st.sent_upto,
                effect=f"taken up to {st.sent_upto}" if answers else "ignored")
            if not answers:
                return
            upto = st.sent_upto
        # Only an ack for the whole flight confirms it: a late ack of an older, shorter
        # batch with the same first seq must not spare the rest from a resend.
        if flight is not None and ack.last is not None and ack.last >= flight.last:
            if not flight.tries and not flight.confirmed:
                now = time.monotonic()
                self._sample(st, now - flight.sent_at)
                # The cloud answers again: batches waiting out a backed-off resend go within
                # a normal timeout from now, not after the long wait.
                normal = self._ack_timeout(st)
                for f in st.flights.values():
                    if f.tries and not f.confirmed:
                        f.timeout = min(f.timeout, now - f.sent_at + normal)
            flight.confirmed = True
        if upto > st.acked:
            st.acked = await asyncio.to_thread(self.buffer.ack, ack.stream, upto)
            st.last_ack_at = datetime.now(UTC).isoformat()
        if self._wake is not None:
            self._wake.set()

    # -- downlink ------------------------------------------------------------------------------

    def _dispatch(self, topic: str, payload: bytes) -> None:
        try:
            gateway_id, leaf = p.parse_topic(topic)
        except p.ProtocolError as exc:
            log.warning("sync.bad_topic", topic=topic, error=str(exc))
            return
        if gateway_id != self.gateway_id:
            return
        if leaf == p.LEAF_ACK:
            self._spawn(self._on_ack(payload))
        elif leaf == p.LEAF_CONFIG:
            self._spawn(self._on_config_msg(payload))
        elif leaf == p.LEAF_BADGES:
            self._spawn(self._on_badges_msg(payload))
        elif leaf.startswith(p.LEAF_CMD + "/") and leaf.count("/") == 1:
            self._spawn(self._on_command_msg(leaf.split("/", 1)[1], payload))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._cmd_tasks.add(task)
        task.add_done_callback(self._cmd_tasks.discard)

    async def _event(self, kind: str, severity: str, **fields: Any) -> None:
        try:
            await asyncio.to_thread(self.buffer.append_event, kind, severity=severity, **fields)
        except Exception:  # noqa: BLE001 - logging the event must not lose the message
            log.exception("sync.event_failed", kind=kind)

    async def _refuse(self, kind: str, reason: str, payload: bytes, **ctx: Any) -> None:
        """One log line and one event per refused downlink message (kept for inspection)."""
        self.downlink_refused += 1
        self.last_refused = {"kind": kind, "reason": reason,
                             "at": datetime.now(UTC).isoformat(), **ctx}
        quiet = self._downlink_key is None  # said once at start; no line per message
        (log.info if quiet else log.warning)("sync.downlink_refused", kind=kind,
                                             reason=reason, bytes=len(payload), **ctx)
        await self._event("downlink_refused", "warning", what=kind, reason=reason,
                          bytes=len(payload), head=payload[:200].decode("utf-8", "replace"),
                          **ctx)

    async def _verified(self, kind: str, payload: bytes, **ctx: Any
                        ) -> signing.Verified | None:
        if self._downlink_key is None:
            await self._refuse(kind, f"no downlink key ({self.downlink_key_path()}): this "
                               "gateway accepts no downlink", payload, **ctx)
            return None
        try:
            return signing.verify(self._downlink_key, payload, self.gateway_id, kind)
        except signing.SignatureError as exc:
            await self._refuse(kind, str(exc), payload, **ctx)
            return None

    async def _on_config_msg(self, payload: bytes) -> None:
        if not payload:
            return  # retained config cleared
        signed = await self._verified(signing.KIND_CONFIG, payload)
        if signed is None:
            return
        try:
            desired = p.DesiredConfig.model_validate(signed.body)
        except ValueError as exc:
            await self._config_result(None, f"unreadable desired config: {exc}")
            return
        if desired.version != signed.ref:
            await self._refuse("config", f"version {desired.version} is not the signed "
                               f"{signed.ref}", payload)
            return
        if desired.version == self.applied_config_version:
            return  # the retained copy again, after a reconnect
        in_force = max(self.applied_config_version or 0, self._downlink.config)
        if desired.version < in_force or desired.version <= (self.applied_config_version or 0):
            await self._refuse("config", f"version {desired.version} is not greater than the "
                               f"one in force ({in_force})", payload, version=desired.version)
            return
        await asyncio.to_thread(self._downlink.saw_config, desired.version)
        if self.on_config is None:
            await self._config_result(desired.version, "this gateway takes no remote config")
            return
        try:
            error = self.on_config({"version": desired.version, "config": desired.config})
            if inspect.isawaitable(error):
                error = await error
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            error = f"{type(exc).__name__}: {exc}"
        await self._config_result(desired.version, error)

    async def _config_result(self, version: int | None, error: str | None) -> None:
        if error is None:
            self.applied_config_version = version
            self.config_rejected = None
            log.info("sync.config_applied", version=version)
            await self._event("config_applied", "info", version=version)
        else:
            self.config_rejected = {"version": version, "error": error}
            log.warning("sync.config_rejected", version=version, error=error)
            await self._event("config_rejected", "warning", version=version, error=error)
        self._publish_status()

    async def _on_badges_msg(self, payload: bytes) -> None:
        if not payload:
            return
        signed = await self._verified(signing.KIND_BADGES, payload)
        if signed is None:
            return
        try:
            badges = p.BadgeList.model_validate(signed.body)
            if badges.version != signed.ref:
                raise ValueError(f"version {badges.version} is not the signed {signed.ref}")
            if badges.version < self._downlink.badges:
                raise ValueError(f"version {badges.version} is not greater than the one in "
                                 f"force ({self._downlink.badges})")
            if badges.version == self.badges_version:
                return  # the retained copy again, after a reconnect
            if self.on_badges is not None:
                self.on_badges(badges.model_dump(mode="json"))
        except Exception as exc:  # noqa: BLE001 - a bad list or the consumer's refusal
            await self._refuse("badges", str(exc), payload)
            return
        await asyncio.to_thread(self._downlink.set_badges, badges.version)
        self.badges_version = badges.version
        self._publish_status()

    async def _on_command_msg(self, cmd_id: str, payload: bytes) -> None:
        if len(cmd_id) > 64:  # ids are kept in the executed record: bounded
            await self._refuse("cmd", f"command id of {len(cmd_id)} characters", payload,
                               id=cmd_id[:64])
            return
        signed = await self._verified(signing.KIND_CMD, payload, id=cmd_id)
        if signed is None:
            return
        # Checked and marked without an await in between: a duplicate delivered meanwhile
        # finds the id taken.
        if self._downlink.executed(cmd_id):
            await self._refuse("cmd", "already executed (a command runs once)", payload,
                               id=cmd_id)
            return
        try:
            cmd = p.Command.model_validate(signed.body)
            if not (cmd.id == cmd_id == signed.ref):
                raise ValueError(f"command id {cmd.id!r} / signed {signed.ref!r} differs "
                                 f"from topic {cmd_id!r}")
            if self._downlink_broken:
                raise ValueError(f"record of executed commands unreadable: "
                                 f"{self._downlink_broken}")
            assert signed.expires is not None  # signing.verify demands it of a command
            self._downlink.record_command(cmd_id, signed.expires, save=False)
            # Saved before it runs (at most once); in turn, so commands start in the order
            # they came.
            async with self._cmd_order:
                await asyncio.to_thread(self._downlink.save)
        except (ValueError, OverflowError, OSError) as exc:
            await self._refuse("cmd", str(exc), payload, id=cmd_id)
            self._publish_result(p.CommandResult(id=cmd_id, ok=False, error=f"refused: {exc}"))
            return
        # A long command reports progress on its result topic (field: remote_commands).
        token = command_progress.set(lambda info: self._publish_result(
            p.CommandResult(id=cmd_id, ok=True, progress=info)))
        try:
            if self.on_command is None:
                raise LookupError("this gateway takes no commands")
            log.info("sync.command", id=cmd_id, name=cmd.name)
            result = p.CommandResult(id=cmd_id, ok=True,
                                     result=await self.on_command(cmd.name, cmd.args))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a result
            log.warning("sync.command_failed", id=cmd_id, error=str(exc))
            result = p.CommandResult(id=cmd_id, ok=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            command_progress.reset(token)
        self._publish_result(result)

    def _publish_result(self, result: p.CommandResult) -> None:
        self.client.publish(p.cmd_result_topic(self.gateway_id, result.id),
                            p.dumps(result.model_dump(mode="json")), qos=1)

    # -- status --------------------------------------------------------------------------

    def _status_payload(self, state: str) -> bytes:
        h = self.health()
        status = p.Status(
            state=state,  # type: ignore[arg-type]
            ts=datetime.now(UTC), applied_config_version=self.applied_config_version,
            epoch=self.epoch,
            config_rejected=self.config_rejected, badges_version=self.badges_version,
            backlog=h["backlog"],
            **(self.status_extra() if self.status_extra is not None else {}),
        )
        return p.dumps(status.model_dump(mode="json"))

    def publish_status(self) -> None:
        """Publish the retained status now (thread-safe), e.g. when the buffer cannot be
        written."""
        self._publish_status()

    def _publish_status(self) -> None:
        if self._connected:
            self.client.publish(p.topic(self.gateway_id, p.LEAF_STATUS),
                                self._status_payload(p.STATUS_ONLINE), qos=1, retain=True)

    async def _status_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.cfg.status_interval)
            self._publish_status()


def uplink_offset(gateway_id: str, spread: float) -> float:
    """This gateway's fixed place in the window after each quarter-hour: its id hashed to
    [0, spread) seconds (evenly spread over a fleet, the same at every start)."""
    digest = hashlib.sha256(gateway_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * spread


def live_hold(offset: float, wall: float) -> float:
    """Seconds from ``wall`` (Unix time) until ``offset`` after the last quarter-hour, or 0
    once past it."""
    since = wall % QUARTER_HOUR
    return offset - since if since < offset else 0.0


def _no_delay(_c: mqtt.Client, _u: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _wait_published(info: mqtt.MQTTMessageInfo, timeout: float) -> None:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):
        pass  # not connected any more: the broker publishes our will instead

