"""The cloud schema as SQLAlchemy Core tables (one MetaData); migrations mirror it.

Times are stored in UTC. SQLite keeps DateTime columns without an offset, so every writer
converts to UTC first and readers treat naive values from SQLite as UTC. Decimal values
are TEXT holding the exact string the gateway sent (SQLite has no exact numeric type),
except readings' values (see ``reading_rows``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sitegate.sync import protocol as p

metadata = MetaData()

# Rows are unique on (gateway_id, epoch, seq): a gateway whose buffer was replaced (after
# corruption) starts its sequences again under a new epoch. Rows stored before epochs
# existed, and gateways that send none, have the legacy epoch.
LEGACY_EPOCH = p.LEGACY_EPOCH

TZ = DateTime(timezone=True)

gateways = Table(
    "gateways", metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("first_seen", TZ, nullable=False),
    Column("last_seen", TZ, nullable=False),
    Column("online", Boolean, nullable=False, default=False),
    Column("status", Text),  # JSON: the last status message (birth / health / will)
    Column("applied_config_version", Integer),
)

# Readings are stored compactly in ``reading_rows`` and read through the view ``readings``
# (the columns every reader has always seen: epoch, value, unit and quality as text, flags
# as a JSON list). A stored row holds numbers as numbers: the value exactly (NUMERIC on
# PostgreSQL; on SQLite the plain decimal text, see ``reading_rows``), small ids for epoch,
# unit, quality and flag list from the lookup tables below (no "[]" text on every row).
#
# The time column is part of the unique key: PostgreSQL partitions the table by month of
# ``ts`` (sitegate.cloud.store.partitions), and a partitioned table's unique keys must hold
# the partition column. Still idempotent: a resent row carries the same ts. The ingest never
# relies on the key to drop duplicates (it writes only what is above the locked mark).

# Each gateway's buffer epochs (28 characters each) -> a 4-byte id on every row: one id
# per (gateway, epoch), so the id alone names the row's sequence ("stream") and the unique
# key needs no gateway text (a smaller index: it is most of a row's bytes).
reading_epochs = Table(
    "reading_epochs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), nullable=False),
    Column("epoch", String(40), nullable=False),
    UniqueConstraint("gateway_id", "epoch", name="uq_reading_epochs_gateway_epoch"),
)

# Unit texts (a gateway may send any, up to 32 characters: an INTEGER id, never exhausted).
reading_units = Table(
    "reading_units", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit", String(32), nullable=False, unique=True),
)

# Flag lists as the view shows them (JSON text) -> an id; 0 is no flags ("[]", the usual
# case). Not NULL for none: a NULL on a row costs PostgreSQL a null bitmap, which makes the
# row header 32 bytes instead of 24, more than the 4-byte id.
NO_FLAGS = 0
reading_flags = Table(
    "reading_flags", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("flags", Text, nullable=False, unique=True),
)

# The protocol's three qualities, fixed ids (the migration fills them).
QUALITY_IDS = {p.GOOD: 0, p.SUSPECT: 1, p.INVALID: 2}
reading_qualities = Table(
    "reading_qualities", metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("quality", String(16), nullable=False, unique=True),
)

# The value: exact, and always a plain decimal ("4500", never "4.5E+3"): the ingest writes
# it so, and PostgreSQL's NUMERIC prints so. SQLite has no exact numeric type; the plain
# decimal text is exact for every value the protocol accepts (|v| < 1e12, 9 decimals: up to
# 22 characters), which no 64-bit integer of fixed sub-units is (1e12 at 1e-9 needs 70 bits),
# and is about the size of such an integer for a meter's usual 6-10 digits.
VALUE = Numeric().with_variant(Text(), "sqlite")

# Column order is PostgreSQL's storage order: the 8-byte columns first, then the 4- and
# 2-byte ids, then the variable-length ones, so no byte goes to alignment padding.
reading_rows = Table(
    "reading_rows", metadata,
    Column("ts", TZ, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("read_at", TZ),
    Column("received_at", TZ, nullable=False),
    Column("epoch_id", Integer, nullable=False),  # reading_epochs.id
    Column("unit_id", Integer, nullable=False),  # reading_units.id
    Column("flags_id", Integer, nullable=False),  # reading_flags.id; NO_FLAGS: none
    Column("quality_id", SmallInteger, nullable=False),  # reading_qualities.id
    Column("gateway_id", String(64), nullable=False),
    Column("meter_id", String(128), nullable=False),
    Column("quantity", String(64), nullable=False),
    Column("value", VALUE, nullable=False),
    # (gateway, epoch, seq, ts): the epoch id holds the gateway
    UniqueConstraint("epoch_id", "seq", "ts", name="uq_reading_rows_epoch_seq_ts"),
    Index("ix_reading_rows_series", "gateway_id", "meter_id", "quantity", "ts")
    .ddl_if(dialect="postgresql"),
    # SQLite: covers billing's per-register load (migration ingest_0003 says why not on PG)
    Index("ix_reading_rows_load", "gateway_id", "meter_id", "quantity", "ts", "value",
          "unit_id", "quality_id").ddl_if(dialect="sqlite"),
    postgresql_partition_by="RANGE (ts)",
)

# The view ``readings`` (migration ingest_0005): what every reader selects from. Not in
# ``metadata`` (it is no table to create or compare); inserting into it works too (a
# trigger maps the texts to ids), for tools and tests; the ingest writes ``reading_rows``.
views = MetaData()
readings = Table(
    "readings", views,
    Column("gateway_id", String(64), nullable=False),
    Column("epoch", String(40), nullable=False, default=LEGACY_EPOCH),
    Column("seq", BigInteger, nullable=False),
    Column("meter_id", String(128), nullable=False),
    Column("ts", TZ, nullable=False),
    Column("quantity", String(64), nullable=False),
    Column("value", Text, nullable=False),  # the plain decimal
    Column("unit", String(32), nullable=False),
    Column("quality", String(16), nullable=False),
    Column("flags", Text, nullable=False, default="[]"),  # JSON list
    Column("read_at", TZ),
    Column("received_at", TZ, nullable=False),
)


def _session_fields() -> list[Column]:  # type: ignore[type-arg]
    """What ``sessions`` and ``session_latest`` both keep of a session report, besides the
    payload (fresh Column objects: a Column belongs to one table)."""
    return [
        Column("charge_point_id", String(128)),
        Column("connector", Integer),
        Column("badge", String(64)),
        Column("started_at", TZ),
        Column("stopped_at", TZ),
        Column("energy_wh", Text),
        Column("received_at", TZ, nullable=False),
    ]


sessions = Table(
    "sessions", metadata,
    Column("gateway_id", String(64), nullable=False),
    Column("epoch", String(40), nullable=False, server_default=LEGACY_EPOCH),
    Column("seq", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),  # the full record, JSON
    Column("session_id", String(128)),
    *_session_fields(),
    UniqueConstraint("gateway_id", "epoch", "seq", name="uq_sessions_gateway_epoch_seq"),
    Index("ix_sessions_session", "gateway_id", "session_id"),
)

events = Table(
    "events", metadata,
    Column("gateway_id", String(64), nullable=False),
    Column("epoch", String(40), nullable=False, server_default=LEGACY_EPOCH),
    Column("seq", BigInteger, nullable=False),
    Column("ts", TZ, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("received_at", TZ, nullable=False),
    UniqueConstraint("gateway_id", "epoch", "seq", name="uq_events_gateway_epoch_seq"),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", TZ, nullable=False),
    Column("topic", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

# The contiguous high-water mark acknowledged per gateway and stream.
acks = Table(
    "acks", metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("stream", String(16), primary_key=True),
    Column("epoch", String(40), primary_key=True, server_default=LEGACY_EPOCH),
    Column("upto", BigInteger, nullable=False, default=0),
    Column("updated_at", TZ, nullable=False),
)

# Batches committed above the mark (a gap below them); merged into the mark once it closes.
ack_ranges = Table(
    "ack_ranges", metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("stream", String(16), primary_key=True),
    Column("epoch", String(40), primary_key=True, server_default=LEGACY_EPOCH),
    Column("first", BigInteger, primary_key=True),
    Column("last", BigInteger, nullable=False),
)

# The current report of each session: the latest one (a completed report always wins over a
# running one, then the highest epoch, then the highest seq), upserted in the transaction
# that stores the report in ``sessions``. Read this, not ``sessions``, for "the" session.
session_latest = Table(
    "session_latest", metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("session_id", String(128), primary_key=True),
    Column("completed", Boolean, nullable=False),
    Column("epoch", String(40), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),  # the full record, JSON
    *_session_fields(),
    Index("ix_session_latest_stopped", "stopped_at"),
)

STREAM_TABLES = {"readings": readings, "sessions": sessions, "events": events}

# API bearer tokens (Alembic branch ``access``). Only the SHA-256 of a token is kept: the
# token itself is shown once, when it is created.
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # hex SHA-256
    Column("scopes", Text, nullable=False),  # space-separated, see sitegate.cloud.auth.scopes
    Column("created_at", TZ, nullable=False),
    Column("expires_at", TZ),  # None: until revoked
    Column("revoked_at", TZ),
)

# -- billing (Alembic branch ``billing``). Amounts are exact decimal strings. ------------

# The imported site model, as validated canonical JSON: billing reads it back as is.
billing_sites = Table(
    "billing_sites", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("model", Text, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

billing_invoices = Table(
    "billing_invoices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),  # gap-free per site, drafts included
    Column("kind", String(16), nullable=False),  # invoice | credit_note
    Column("account_id", String(64), nullable=False),
    Column("period", String(32), nullable=False),  # a Period label
    Column("state", String(16), nullable=False),  # draft issued settled cancelled written_off
    Column("reminder_level", Integer, nullable=False, default=0),
    Column("issue_date", String(10)),
    Column("due_date", String(10)),
    Column("issued_at", DateTime(timezone=True)),  # wall clock of issue: late-reading cut
    Column("total_due", Text, nullable=False),
    Column("document", Text, nullable=False),  # canonical JSON, never edited once issued
    Column("inputs", Text, nullable=False, default="{}"),  # meter -> digest of readings
    Column("credited_invoice_id", Integer, ForeignKey("billing_invoices.id")),
    Column("borne_by", String(16)),  # cancelled: operator; written off: owner
    UniqueConstraint("site_id", "number", name="uq_billing_invoices_number"),
    Index("ix_billing_invoices_period", "site_id", "period", "account_id"),
)

# Payments, reminders and state changes of an invoice, in order.
billing_events = Table(
    "billing_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, ForeignKey("billing_invoices.id"), nullable=False),
    Column("date", String(10), nullable=False),
    Column("kind", String(16), nullable=False),  # issue payment reminder credit cancel write_off
    Column("amount", Text),
    Column("note", Text),
    Index("ix_billing_events_invoice", "invoice_id"),
)

# Register readings entered from outside the gateway (hand-noted start/end readings, a
# utility's meter file, a technician's photo reading): the meter is the site model's id;
# the value is the plain decimal as entered, in its unit; who entered it and from where.
billing_manual_readings = Table(
    "billing_manual_readings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("meter", String(64), nullable=False),
    Column("quantity", String(64), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("value", Text, nullable=False),
    Column("unit", String(16), nullable=False),
    Column("source", String(32), nullable=False),  # manual | utility | photo | ...
    Column("entered_by", String(128), nullable=False),
    Column("note", Text),
    Column("entered_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("site_id", "meter", "quantity", "ts",
                     name="uq_billing_manual_readings_instant"),
)

# -- trust (Alembic branch ``trust``): enrolment of gateways --------------------------------

# One-time claim tokens: only the SHA-256 of the secret is kept. ``used_key`` (SHA-256 of the
# enrolled public key) lets the same device retry an enrolment whose answer it lost.
claim_tokens = Table(
    "claim_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("used_at", TZ),
    Column("used_by", String(64)),
    Column("used_key", String(64)),
    Column("revoked_at", TZ),  # withdrawn before use (trust_0002)
)

# Enrolled gateways: the site their token bound them to; ``revoked_at`` set = shut out.
gateway_identities = Table(
    "gateway_identities", metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False),
    Column("enrolled_at", TZ, nullable=False),
    Column("revoked_at", TZ),
)

# Every client certificate issued (serial as decimal text: up to 159 bits), for the CRL.
gateway_certs = Table(
    "gateway_certs", metadata,
    Column("serial", String(64), primary_key=True),
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("issued_at", TZ, nullable=False),
    Column("not_after", TZ, nullable=False),
    Column("revoked_at", TZ),
)

# Parts that keep their tables in their own module, on this metadata (import for effect).
from sitegate.cloud.store import tables_commissioning as _tc  # noqa: E402,F401  (field part)
from sitegate.cloud.store import tables_expense  # noqa: E402, F401
from sitegate.cloud.store import tables_jobs as _jobs  # noqa: E402,F401  (issue 16)
from sitegate.cloud.store import tables_ocmf as _tables_ocmf  # noqa: E402,F401  (ocmf part)
from sitegate.cloud.store import tables_payments as _payments  # noqa: E402,F401  (issue 16)
from sitegate.cloud.store import tables_stays as _stays  # noqa: E402,F401  (stays, issue 16)
from sitegate.cloud.store import tables_web as _tables_web  # noqa: E402,F401  (web console)
