"""A small MQTT 5 broker on loopback, embedded in the demo's event loop.

Why not amqtt (ARCHITECTURE.md's choice): it speaks MQTT 3.1.1 only and refuses a version 5
CONNECT, while both ends of our contract are MQTT 5 (session expiry on the gateway, a shared
subscription ``$share/...`` on the ingest). This broker covers what those clients use, no
more: QoS 0/1, retained messages, last will, shared subscriptions (one member of a group gets
each message), ``+``/``#`` filters, subscriptions kept across a reconnect with
``clean_start = 0``. It keeps nothing on disk and never redelivers: its clients are in the
same process on loopback. For anything else, use Mosquitto (``sitegate demo --broker URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
TOPIC_ALIAS = 0x23  # the one property a broker must not forward


class ProtocolError(Exception):
    pass


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    """Fields of one packet body, in order."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("packet shorter than its fields")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        return self.binary().decode("utf-8")

    def varint(self) -> int:
        n, shift = 0, 0
        for _ in range(4):
            b = self.u8()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise ProtocolError("malformed variable byte integer")

    def properties(self) -> bytes:
        return self.take(self.varint())

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


def _strip_topic_alias(props: bytes) -> bytes:
    """PUBLISH properties to forward. Our clients never send a topic alias; if one comes,
    the message's properties are dropped rather than parsed property by property."""
    return b"" if TOPIC_ALIAS in props else props


def packet(kind: int, body: bytes, flags: int = 0) -> bytes:
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return len(b).to_bytes(2, "big") + b


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``$`` topics are not matched by a leading wildcard)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f, t = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


@dataclass
class _Sub:
    topic_filter: str
    qos: int
    group: str | None  # shared subscription group, or None


@dataclass
class _Message:
    topic: str
    payload: bytes
    qos: int
    props: bytes


@dataclass
class _Session:
    client_id: str
    subs: dict[str, _Sub] = field(default_factory=dict)  # by the filter as subscribed
    writer: asyncio.StreamWriter | None = None
    will: _Message | None = None
    will_retain: bool = False
    ids: itertools.cycle = field(default_factory=lambda: itertools.cycle(range(1, 65536)))

    def send(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)


class Broker:
    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.retained: dict[str, _Message] = {}
        self._server: asyncio.Server | None = None
        self._turn = itertools.count()  # round robin within shared groups
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in self.sessions.values():
            if s.writer is not None:
                s.writer.close()  # the handler sees EOF and ends
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    # -- one connection ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session: _Session | None = None
        clean = False
        try:
            kind, _flags, body = await _read_packet(reader)
            if kind != CONNECT:
                return
            session = self._connect(body, writer)
            if session is None:
                return
            while True:
                kind, flags, body = await _read_packet(reader)
                if kind == DISCONNECT:
                    clean = True
                    return
                self._handle(session, kind, flags, body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                log.warning("broker.connection_error", error=str(exc))
        finally:
            self._handlers.discard(task)
            if session is not None and session.writer is writer:
                session.writer = None
                if not clean and session.will is not None:
                    self.publish(session.will, session.will_retain)
                session.will = None
            writer.close()

    def _connect(self, body: bytes, writer: asyncio.StreamWriter) -> _Session | None:
        r = _Reader(body)
        if r.text() != "MQTT" or r.u8() != 5:
            # An MQTT 3.1.1 CONNACK "unacceptable protocol version" is understood by all.
            writer.write(packet(CONNACK, b"\x00\x01"))
            return None
        flags = r.u8()
        r.u16()  # keepalive: the clients are in this process; nothing to police
        r.properties()
        client_id = r.text() or f"auto-{next(self._turn)}"
        will = None
        if flags & 0x04:
            will_props = r.properties()
            topic = r.text()
            will = _Message(topic, r.binary(), (flags >> 3) & 3, _strip_topic_alias(will_props))
        old = self.sessions.get(client_id)
        if old is not None and old.writer is not None:
            old.writer.close()  # session takeover
            old.writer = None
        present = old is not None and not flags & 0x02
        session = old if present and old is not None else _Session(client_id)
        session.writer, session.will, session.will_retain = writer, will, bool(flags & 0x20)
        self.sessions[client_id] = session
        writer.write(packet(CONNACK, bytes([1 if present else 0, 0, 0])))
        return session

    def _handle(self, s: _Session, kind: int, flags: int, body: bytes) -> None:
        r = _Reader(body)
        if kind == PUBLISH:
            qos = (flags >> 1) & 3
            topic = r.text()
            pid = r.u16() if qos else None
            props = _strip_topic_alias(r.properties())
            self.publish(_Message(topic, r.rest(), min(qos, 1), props), bool(flags & 1))
            if pid is not None:
                s.send(packet(PUBACK, pid.to_bytes(2, "big")))
        elif kind == SUBSCRIBE:
            pid = r.u16()
            r.properties()
            granted = bytearray()
            while r.pos < len(r.data):
                f, opts = r.text(), r.u8()
                granted.append(self._subscribe(s, f, min(opts & 3, 1)))
            s.send(packet(SUBACK, pid.to_bytes(2, "big") + b"\x00" + bytes(granted)))
        elif kind == UNSUBSCRIBE:
            pid = r.u16()
            r.properties()
            codes = bytearray()
            while r.pos < len(r.data):
                codes.append(0 if s.subs.pop(r.text(), None) else 0x11)
            s.send(packet(UNSUBACK, pid.to_bytes(2, "big") + b"\x00" + bytes(codes)))
        elif kind == PINGREQ:
            s.send(packet(PINGRESP, b""))
        # PUBACK from a client: nothing to do, this broker does not redeliver.

    def _subscribe(self, s: _Session, topic_filter: str, qos: int) -> int:
        group = None
        real = topic_filter
        if topic_filter.startswith("$share/"):
            parts = topic_filter.split("/", 2)
            if len(parts) < 3 or not parts[1]:
                return 0x8F  # topic filter invalid
            group, real = parts[1], parts[2]
        s.subs[topic_filter] = _Sub(real, qos, group)
        if group is None:  # shared subscriptions get no retained messages (MQTT 5 4.8.2)
            for m in list(self.retained.values()):
                if matches(real, m.topic):
                    self._deliver(s, m, min(qos, m.qos), retain=True)
        return qos

    # -- routing -------------------------------------------------------------------------------

    def publish(self, m: _Message, retain: bool) -> None:
        if retain:
            if m.payload:
                self.retained[m.topic] = m
            else:
                self.retained.pop(m.topic, None)
        groups: dict[str, list[tuple[_Session, int]]] = {}
        for s in list(self.sessions.values()):
            best = -1
            for sub in s.subs.values():
                if not matches(sub.topic_filter, m.topic):
                    continue
                if sub.group is None:
                    best = max(best, sub.qos)
                elif s.writer is not None:
                    groups.setdefault(sub.group, []).append((s, sub.qos))
            if best >= 0:
                self._deliver(s, m, min(best, m.qos), retain=False)
        for members in groups.values():
            s, qos = members[next(self._turn) % len(members)]
            self._deliver(s, m, min(qos, m.qos), retain=False)

    def _deliver(self, s: _Session, m: _Message, qos: int, *, retain: bool) -> None:
        body = _str(m.topic)
        if qos:
            body += next(s.ids).to_bytes(2, "big")
        body += varint(len(m.props)) + m.props + m.payload
        s.send(packet(PUBLISH, body, (qos << 1) | (1 if retain else 0)))


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    for _ in range(4):
        b = (await reader.readexactly(1))[0]
        length |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    else:
        raise ProtocolError("malformed remaining length")
    return first >> 4, first & 0x0F, await reader.readexactly(length)
