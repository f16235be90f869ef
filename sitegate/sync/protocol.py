"""The edge-cloud contract, shared by the gateway and the cloud.

Only plain data lives here: the reading type every driver returns, and (grown by the
sync part) topic names and payload schemas. Nothing in here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

PROTOCOL_VERSION = 1

# Quality of a reading. "good" is a value the meter vouched for; "suspect" is a value that
# was read but carries a flag (see Reading.flags); "invalid" was read but must not be billed.
GOOD = "good"
SUSPECT = "suspect"
INVALID = "invalid"
QUALITIES = (GOOD, SUSPECT, INVALID)


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one meter at one scheduled instant.

    ``ts`` is the scheduled (wall-clock aligned) timestamp the value belongs to, ``read_at``
    when the bus actually delivered it; both timezone-aware UTC. ``value`` is exact.
    ``quantity`` is an OBIS-style name for electricity (``1-0:1.8.0``) or a gateway quantity
    name for other media (see the M-Bus profiles).
    """

    meter_id: str
    ts: datetime
    quantity: str
    value: Decimal
    unit: str
    quality: str = GOOD
    read_at: datetime | None = None
    flags: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: decimals as exact strings, times as ISO 8601."""
        d: dict[str, Any] = {
            "meter_id": self.meter_id,
            "ts": self.ts.isoformat(),
            "quantity": self.quantity,
            "value": str(self.value),
            "unit": self.unit,
            "quality": self.quality,
        }
        if self.read_at is not None:
            d["read_at"] = self.read_at.isoformat()
        if self.flags:
            d["flags"] = list(self.flags)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reading:
        return cls(
            meter_id=d["meter_id"],
            ts=datetime.fromisoformat(d["ts"]),
            quantity=d["quantity"],
            value=Decimal(d["value"]),
            unit=d["unit"],
            quality=d.get("quality", GOOD),
            read_at=datetime.fromisoformat(d["read_at"]) if d.get("read_at") else None,
            flags=tuple(d.get("flags", ())),
        )


# Streams of the buffer and of the uplink; each has its own sequence numbers.
STREAM_READINGS = "readings"
STREAM_SESSIONS = "sessions"
STREAM_EVENTS = "events"
STREAMS = (STREAM_READINGS, STREAM_SESSIONS, STREAM_EVENTS)


# --- uplink/downlink contract (sync part) ---------------------------------------------------
# Topics live under sitegate/v1/{gateway_id}/. Every payload is compact JSON (UTF-8); uplink
# batches are that JSON zlib-compressed. bench/bench_sync_encoding.py picked it: msgpack and
# CBOR save ~17 % over JSON, zlib ~95 %, and JSON lets the gateway splice the buffer's
# stored row texts into the batch unchanged (no decode/re-encode). Decimals travel as exact
# strings. Decoders also take an uncompressed JSON batch (handy with mosquitto_pub).

import json as _json  # noqa: E402
import re  # noqa: E402
import zlib as _zlib  # noqa: E402
from datetime import UTC as _UTC  # noqa: E402
from typing import Literal as _Lit  # noqa: E402
from typing import TypeVar as _TypeVar  # noqa: E402

from pydantic import AwareDatetime as _AwareDatetime  # noqa: E402
from pydantic import BaseModel as _Model  # noqa: E402
from pydantic import ConfigDict as _Cfg  # noqa: E402
from pydantic import Field as _Field  # noqa: E402
from pydantic import ValidationError as _ValidationError  # noqa: E402
from pydantic import field_validator as _field_validator  # noqa: E402
from pydantic import model_validator as _model_validator  # noqa: E402

TOPIC_PREFIX = f"sitegate/v{PROTOCOL_VERSION}"
LEAF_STATUS = "status"
LEAF_ACK = "ack"
LEAF_CONFIG = "config"
LEAF_BADGES = "badges"
LEAF_CMD = "cmd"
# Ingest processes share the uplink with an MQTT 5 shared subscription of this group.
INGEST_SHARE_GROUP = "sitegate-ingest"
# Status is shared too: one process stores each status (a retained status is not sent
# to a shared subscription; the registry keeps the last one, and gateways repeat it).
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"


class ProtocolError(ValueError):
    """A payload or topic that does not follow this contract; the text says why."""


def check_gateway_id(gateway_id: str) -> str:
    if not gateway_id or any(c in gateway_id for c in "/+#$") or len(gateway_id) > 64:
        raise ProtocolError(f"gateway id {gateway_id!r} is empty, too long or has / + # $")
    return gateway_id


def topic(gateway_id: str, leaf: str) -> str:
    """``sitegate/v1/{gateway_id}/{leaf}``; leaf is a stream, status, ack, config, badges."""
    return f"{TOPIC_PREFIX}/{check_gateway_id(gateway_id)}/{leaf}"


def cmd_topic(gateway_id: str, cmd_id: str) -> str:
    return topic(gateway_id, f"{LEAF_CMD}/{cmd_id}")


def cmd_result_topic(gateway_id: str, cmd_id: str) -> str:
    return topic(gateway_id, f"{LEAF_CMD}/{cmd_id}/result")


def parse_topic(name: str) -> tuple[str, str]:
    """(gateway_id, leaf) of a topic of this protocol version; ProtocolError otherwise."""
    prefix = TOPIC_PREFIX + "/"
    if not name.startswith(prefix):
        raise ProtocolError(f"topic {name!r} is not under {prefix}")
    gateway_id, _, leaf = name[len(prefix):].partition("/")
    if not leaf:
        raise ProtocolError(f"topic {name!r} has no leaf after the gateway id")
    return check_gateway_id(gateway_id), leaf


def ingest_subscriptions() -> list[str]:
    """What a cloud ingest process subscribes to: the uplink streams and status, shared."""
    return [f"$share/{INGEST_SHARE_GROUP}/{TOPIC_PREFIX}/+/{leaf}"
            for leaf in (*STREAMS, LEAF_STATUS)]


def gateway_subscriptions(gateway_id: str) -> list[str]:
    """What a gateway subscribes to: its acks, desired config, badge list and commands."""
    return [topic(gateway_id, leaf) for leaf in (LEAF_ACK, LEAF_CONFIG, LEAF_BADGES, "cmd/+")]


def dumps(obj: Any) -> bytes:
    """The wire encoding of every non-batch message: compact JSON."""
    return _json.dumps(obj, separators=(",", ":"), default=str).encode()


# Bounds checked on the JSON text before json.loads builds anything: nesting (our deepest
# message is ~6 levels; json.loads would recurse on 100,000), JSON tokens (each becomes a
# Python object), and elements of a batch's ``items``: a gateway sends at most
# BATCH_MAX_ITEMS rows per batch (its batch_rows setting cannot go higher).
JSON_MAX_DEPTH = 16
JSON_MAX_TOKENS = 1_000_000
BATCH_MAX_ITEMS = 10_000
SEQ_MAX = 2**63 - 1  # sequence numbers are signed 64-bit in the buffer and in the store
_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b"[]{},")
_OPEN, _CLOSE, _COMMA, _ARRAY = frozenset(b"[{"), frozenset(b"]}"), ord(","), ord("[")
_PAIR_RE = re.compile(rb"[\[{][^\[\]{}]*[\]}]")  # an innermost bracket pair


def check_json_bounds(text: bytes, max_items: int | None = None) -> None:
    """ProtocolError if ``text`` nests deeper than JSON_MAX_DEPTH, has more than
    JSON_MAX_TOKENS strings and structural characters, or (``max_items``) an array at the
    second level (a batch's items) with more elements. Strings are cut out and the rest
    reduced to brackets and commas at C speed; nesting is measured by taking away the
    innermost bracket pairs, level by level (at most JSON_MAX_DEPTH + 1 passes); elements
    are counted only when there are enough commas for it to matter. Malformed JSON is
    left to json.loads."""
    if b"\\" not in text:  # no escapes (the usual batch): strings lie between quotes
        parts = text.split(b'"')
        strings, rest = len(parts) // 2, b"".join(parts[::2])
    else:
        rest, strings = _STRING_RE.subn(b"", text)
    structure = rest.translate(None, _NOT_STRUCTURE)
    if strings + len(structure) > JSON_MAX_TOKENS:
        raise ProtocolError(f"more than {JSON_MAX_TOKENS} JSON tokens")
    brackets = structure.translate(None, b",")
    for _level in range(JSON_MAX_DEPTH + 1):
        brackets, n = _PAIR_RE.subn(b"", brackets)
        if not n:
            break
    else:
        raise ProtocolError(f"nested deeper than {JSON_MAX_DEPTH} levels")
    if brackets:
        raise ProtocolError("not JSON: unbalanced brackets")
    if max_items is None or len(structure) - len(brackets) < max_items:
        return
    depth = elements = second = 0  # second: the container at the second level, [ or {
    for c in structure:
        if c in _OPEN:
            depth += 1
            if depth == 2:
                second = c
        elif c in _CLOSE:
            depth -= 1
        elif c == _COMMA and depth == 2 and second == _ARRAY:
            elements += 1
            if elements >= max_items:
                raise ProtocolError(f"more than {max_items} items")


def _loads(payload: bytes, max_items: int | None = None) -> Any:
    check_json_bounds(payload, max_items)
    try:
        return _json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None


def _parse(model: type[_M], payload: bytes, max_items: int | None = None) -> _M:
    data = _loads(payload, max_items)
    try:
        return model.model_validate(data)
    except _ValidationError as exc:
        raise ProtocolError(_short(exc)) from None


def _short(exc: _ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class _Strict(_Model):
    model_config = _Cfg(extra="forbid")



_M = _TypeVar("_M", bound=_Model)


# -- uplink batches ---------------------------------------------------------------------------


# Every buffer file has an epoch id, made once with the file: a buffer found corrupt is
# moved aside and a new one starts its sequences at 1 again under a new epoch, so the cloud
# keys rows by (gateway, epoch, seq) and keeps one ack mark per (gateway, stream, epoch).
# New epochs are "YYYYMMDDHHMMSS-<random hex>" (the file's creation time, UTC), so a newer
# buffer sorts after an older one as long as the gateway's clock was right. LEGACY_EPOCH is
# the epoch of buffers (and cloud rows) from before epochs existed; a message without an
# epoch field belongs to it, which keeps protocol version 1 readable both ways.
LEGACY_EPOCH = "0"
EPOCH_PATTERN = r"^[0-9A-Za-z_.-]{1,40}$"
_EPOCH_RE = re.compile(EPOCH_PATTERN)


def check_epoch(epoch: str) -> str:
    if not _EPOCH_RE.match(epoch):
        raise ProtocolError(f"epoch {epoch!r} is not 1-40 of A-Z a-z 0-9 _ . -")
    return epoch


class Batch(_Strict):
    """A run of consecutive buffer rows of one stream: items[i] has seq ``first + i``."""

    v: int = PROTOCOL_VERSION
    stream: _Lit["readings", "sessions", "events"]
    epoch: str = _Field(LEGACY_EPOCH, pattern=EPOCH_PATTERN)
    first: int = _Field(ge=1, le=SEQ_MAX)
    last: int = _Field(ge=1, le=SEQ_MAX)
    items: list[dict[str, Any]] = _Field(max_length=BATCH_MAX_ITEMS)

    @_model_validator(mode="after")
    def _range_matches(self) -> Batch:
        if self.v != PROTOCOL_VERSION:
            raise ValueError(f"protocol version {self.v} is not {PROTOCOL_VERSION}")
        if self.last - self.first + 1 != len(self.items):
            raise ValueError(
                f"range {self.first}..{self.last} does not match {len(self.items)} items")
        return self


# A batch may not inflate beyond this (a compressed bomb is refused, not expanded): ten
# times what a gateway's largest batch_bytes sends.
BATCH_MAX_INFLATED = 16 * 1024 * 1024
BATCH_MAX_BYTES = BATCH_MAX_INFLATED // 10


def encode_batch(stream: str, first: int, item_texts: list[str],
                 epoch: str = LEGACY_EPOCH) -> bytes:
    """Wire form of a batch from the buffer's stored JSON texts (spliced, not re-encoded)."""
    last = first + len(item_texts) - 1
    tag = "" if epoch == LEGACY_EPOCH else f'"epoch":"{check_epoch(epoch)}",'
    head = (f'{{"v":{PROTOCOL_VERSION},"stream":"{stream}",{tag}"first":{first},'
            f'"last":{last},"items":[')
    return _zlib.compress((head + ",".join(item_texts) + "]}").encode(), 6)


def inflate(payload: bytes) -> bytes:
    """The JSON text of a batch payload (zlib-compressed, or plain JSON as it is)."""
    if payload[:1] in (b"{", b"["):
        return payload
    try:
        d = _zlib.decompressobj()
        out = d.decompress(payload, BATCH_MAX_INFLATED)
    except _zlib.error as exc:
        raise ProtocolError(f"not JSON and not zlib: {exc}") from None
    if d.unconsumed_tail:
        raise ProtocolError(f"inflates beyond {BATCH_MAX_INFLATED} bytes")
    return out


def decode_batch(payload: bytes) -> Batch:
    return _parse(Batch, inflate(payload), BATCH_MAX_ITEMS)


def batch_range(payload: bytes) -> tuple[str, str, int, int] | None:
    """(stream, epoch, first, last) of a batch whose items are broken but whose envelope is
    readable.

    Lets the cloud acknowledge (and dead-letter) a bad batch so it is not resent forever.
    """
    try:
        data = _loads(inflate(payload), BATCH_MAX_ITEMS)
        stream, first, last = data["stream"], data["first"], data["last"]
        epoch = data.get("epoch", LEGACY_EPOCH)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        return None  # ProtocolError included: a bomb or a deep text is never acknowledged
    ok = (stream in STREAMS and type(first) is int and type(last) is int  # noqa: E721
          and 1 <= first <= last <= SEQ_MAX and isinstance(epoch, str)
          and _EPOCH_RE.match(epoch))
    return (stream, epoch, first, last) if ok else None


_HEAD_RE = re.compile(rb'\{"v":1,"stream":"(readings|sessions|events)",(?:"epoch":"('
                      rb'[0-9A-Za-z_.-]{1,40})",)?"first":([1-9][0-9]{0,18}),"last":('
                      rb'[1-9][0-9]{0,18}),"items":\[')


def batch_head(payload: bytes) -> tuple[str, str, int, int] | None:
    """(stream, epoch, first, last) from the first bytes of a batch as ``encode_batch``
    writes it, inflating no more than those; None for any other form. Enough to see that
    a batch was committed already (nothing of it is stored on this alone)."""
    if payload[:1] == b"{":
        text = payload[:256]
    else:
        try:
            text = _zlib.decompressobj().decompress(payload, 256)
        except _zlib.error:
            return None
    m = _HEAD_RE.match(text)
    if m is None:
        return None
    first, last = int(m[3]), int(m[4])
    if not first <= last <= SEQ_MAX:
        return None
    return m[1].decode(), (m[2] or b"0").decode(), first, last


# What a stored value may be: billing works in Decimal (28 digits) and integer micro-units
# (18 digits), so a register beyond 10**12 or finer than 10**-9 is no meter's reading.
VALUE_MAX_ABS = Decimal(10) ** 12
VALUE_MIN_EXPONENT = -9
VALUE_MAX_TEXT = 40


def check_value(d: Decimal, text: object = None) -> Decimal:
    """``d`` if a store and billing can hold it; ValueError otherwise."""
    shown = d if text is None else text
    if isinstance(text, str) and len(text) > VALUE_MAX_TEXT:
        raise ValueError(f"value text is longer than {VALUE_MAX_TEXT} characters")
    if not d.is_finite():
        raise ValueError(f"value {shown!r} is not finite")
    if abs(d) >= VALUE_MAX_ABS:
        raise ValueError(f"value {shown!r} is out of range (|value| < 1e12)")
    if d and d.normalize().as_tuple().exponent < VALUE_MIN_EXPONENT:  # type: ignore[operator]
        raise ValueError(f"value {shown!r} has more than {-VALUE_MIN_EXPONENT} decimals")
    return d


class ReadingItem(_Model):
    """One reading as it travels (Reading.to_dict); validated by the cloud before storing."""

    model_config = _Cfg(extra="forbid")

    meter_id: str = _Field(min_length=1)
    ts: _AwareDatetime
    quantity: str = _Field(min_length=1)
    value: str  # exact decimal text: parsed for validity, stored as sent
    unit: str
    quality: _Lit["good", "suspect", "invalid"] = GOOD
    read_at: _AwareDatetime | None = None
    flags: list[str] = []

    @_field_validator("value")
    @classmethod
    def _exact_decimal(cls, v: str) -> str:
        try:
            d = Decimal(v)
        except ArithmeticError:
            raise ValueError(f"value {v!r} is not a decimal number") from None
        check_value(d, v)
        return v


class EventItem(_Model):
    """An event row: ts, kind, severity and free fields (kept whole in the payload)."""

    model_config = _Cfg(extra="allow")

    ts: _AwareDatetime
    kind: str = _Field(min_length=1)
    severity: str = "info"


# -- downlink ------------------------------------------------------------------------------


class Ack(_Strict):
    """The cloud committed ``stream`` of buffer ``epoch`` up to ``upto`` without a gap;
    (first, last) echo the batch that triggered this ack, committed even when a gap below
    keeps ``upto`` back. A gateway ignores an ack for an epoch other than its buffer's."""

    v: int = PROTOCOL_VERSION
    stream: _Lit["readings", "sessions", "events"]
    epoch: str = _Field(LEGACY_EPOCH, pattern=EPOCH_PATTERN)
    upto: int = _Field(ge=0)
    first: int | None = None
    last: int | None = None


def encode_ack(ack: Ack) -> bytes:
    """An ack of the legacy epoch leaves the field out: a gateway from before epochs (whose
    Ack model forbids unknown fields) still reads it."""
    d = ack.model_dump()
    if ack.epoch == LEGACY_EPOCH:
        del d["epoch"]
    return dumps(d)


def decode_ack(payload: bytes) -> Ack:
    return _parse(Ack, payload)


class DesiredConfig(_Strict):
    """Retained on ``config``: the configuration the cloud wants this gateway to run.

    ``config`` is the WHOLE site configuration: the site file's TOML text, or the same as
    a JSON object. The gateway validates all of it, applies it whole or not at all, and
    reports the version it runs (or the refusal and why) in ``status``."""

    v: int = PROTOCOL_VERSION
    version: int = _Field(ge=1)
    config: dict[str, Any] | str


def decode_config(payload: bytes) -> DesiredConfig:
    return _parse(DesiredConfig, payload)


class BadgeEntry(_Strict):
    id: str = _Field(min_length=1)
    status: _Lit["accepted", "blocked", "expired"]
    expires: datetime | None = None
    account: str | None = None


class BadgeList(_Strict):
    """Retained on ``badges``: the local authorization list for the OCPP part."""

    version: int
    badges: list[BadgeEntry]


def decode_badges(payload: bytes) -> BadgeList:
    return _parse(BadgeList, payload)


class Command(_Strict):
    """On ``cmd/{id}``, sent with an MQTT message expiry so a stale one never runs.

    ``name`` and ``args`` are the gateway's own command names (those of its control socket,
    e.g. read, buffer.stats, status); the answer is a CommandResult on ``cmd/{id}/result``.
    """

    v: int = PROTOCOL_VERSION
    id: str = _Field(min_length=1)
    name: str = _Field(min_length=1)
    args: dict[str, Any] = {}


def decode_command(payload: bytes) -> Command:
    return _parse(Command, payload)


class CommandResult(_Strict):
    """On ``cmd/{id}/result``. A long command (a bus scan) first sends messages with
    ``progress`` set (``{done, total, step, found}``, at most one every 2 s); the one
    without ``progress`` is the result."""

    v: int = PROTOCOL_VERSION
    id: str
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    ts: datetime = _Field(default_factory=lambda: datetime.now(_UTC))
    progress: dict[str, Any] | None = None


def decode_command_result(payload: bytes) -> CommandResult:
    return _parse(CommandResult, payload)


class Status(_Model):
    """Retained on ``status``: birth (online, with a health summary) and last will (offline).

    Extra fields are allowed so a newer gateway can report more without breaking the cloud.
    """

    model_config = _Cfg(extra="allow")

    v: int = PROTOCOL_VERSION
    state: _Lit["online", "offline"]
    ts: datetime | None = None
    applied_config_version: int | None = None
    epoch: str | None = None  # the buffer's epoch (see LEGACY_EPOCH)
    # The last desired config that was refused: {"version": int, "error": str}.
    config_rejected: dict[str, Any] | None = None
    badges_version: int | None = None
    backlog: dict[str, int] = {}


def decode_status(payload: bytes) -> Status:
    return _parse(Status, payload)


# --- sessions stream (OCPP) ---
# One payload per session report: a running session is reported periodically (status
# "running"), and once more when it ends ("completed"). The cloud keeps the latest report
# per session_id, so resending a report is harmless. Energies are exact decimal strings, Wh.

from typing import Literal as _Literal  # noqa: E402

from pydantic import BaseModel as _BaseModel  # noqa: E402
from pydantic import ConfigDict as _ConfigDict  # noqa: E402


class SessionMeterValue(_BaseModel):
    model_config = _ConfigDict(extra="forbid")

    ts: datetime
    measurand: str  # OCPP measurand, e.g. Energy.Active.Import.Register, Power.Active.Import
    value: Decimal
    unit: str  # normalized: Wh for energy, W for power, A for current
    phase: str | None = None
    context: str | None = None


# Signed meter values (OCMF) travel with the session, added to version 1 compatibly: a
# cloud that does not know the fields ignores them (billing reads reports through the
# known fields only), an older gateway sends none. ``data`` is the charger's text exactly
# (JSON escapes it and unescapes the same characters), so the cloud checks the very bytes
# the meter signed; ``ocmf`` is the gateway's own check (the cloud checks again).
SIGNED_DATA_MAX = 8192  # characters of one signed value (common.ocmf.DOC_MAX_CHARS)
SIGNED_VALUES_MAX = 16  # per session (common.ocmf.DOCS_MAX)


class SignedMeterValue(_BaseModel):
    model_config = _ConfigDict(extra="forbid")

    ts: datetime
    context: str = _Field(max_length=32)  # Transaction.Begin | Transaction.End | ...
    source: str = _Field(max_length=32)  # MeterValues | StopTransaction | TransactionEvent
    data: str = _Field(min_length=1, max_length=SIGNED_DATA_MAX)
    encoding: str | None = _Field(None, max_length=64)  # 2.0.1 encodingMethod, e.g. OCMF
    signing_method: str | None = _Field(None, max_length=64)
    public_key: str | None = _Field(None, max_length=1024)  # as the charger sent it


class SessionRecord(_BaseModel):
    """One session report: what the gateway sends on the sessions stream and what the
    cloud reads back, both the ingest (its indexed columns) and billing. Fields a newer
    gateway adds are ignored (the stored payload keeps them), so its report never bounces
    off an older cloud; values are bounded as readings are."""

    model_config = _ConfigDict(extra="ignore")

    session_id: str  # stable across reports and restarts: "{charge_point}-{transaction}"
    charge_point: str
    connector: int
    kind: _Literal["ev", "laundry", "ebike"] = "ev"
    badge: str | None = None  # normalized badge id
    account: str | None = None
    start: _AwareDatetime
    stop: _AwareDatetime | None = None
    meter_start_wh: Decimal
    meter_stop_wh: Decimal | None = None  # last known value while running
    energy_wh: Decimal | None = None
    duration_s: int | None = None
    stop_reason: str | None = None
    meter_values: list[SessionMeterValue] = []
    # e.g. "closed_after_reboot", "nonconformant_payload", "meter_decreased", "no_badge"
    flags: list[str] = []
    status: _Literal["running", "completed"] = "running"
    # the charger is configured as calibrated: its sessions must carry valid signed values
    calibrated: bool = False
    signed_values: list[SignedMeterValue] = _Field([], max_length=SIGNED_VALUES_MAX)
    # the gateway's check of them (common.ocmf.Check.to_dict) and the key it used
    ocmf: dict[str, Any] | None = None
    public_key: str | None = _Field(None, max_length=1024)

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready dict: decimals as exact strings, times in ISO 8601."""
        return self.model_dump(mode="json")

    @_field_validator("energy_wh", "meter_start_wh", "meter_stop_wh")
    @classmethod
    def _bounded(cls, v: Decimal | None) -> Decimal | None:
        return None if v is None else check_value(v)


ITEM_MODELS: dict[str, type[_BaseModel]] = {
    STREAM_READINGS: ReadingItem, STREAM_SESSIONS: SessionRecord, STREAM_EVENTS: EventItem,
}
