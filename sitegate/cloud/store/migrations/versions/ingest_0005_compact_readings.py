"""ingest: compact reading rows (numbers as numbers, small ids), read through a view

Rows move from ``readings`` to ``reading_rows``: the value as NUMERIC on PostgreSQL (on
SQLite the plain decimal text: "4500", never "4.5E+3"); epoch, unit and quality as ids into
``reading_epochs`` (one id per gateway and epoch, so the unique key is (epoch id, seq, ts)
without the gateway's text), ``reading_units`` and ``reading_qualities``; the flag list as
an id into ``reading_flags`` (0: none; not NULL, which costs PostgreSQL a null bitmap: 8
bytes a row). ``readings`` becomes a view giving every reader the columns it always had (the
value as a plain decimal); inserting into the view still works (a trigger maps texts to
ids), for tools and tests; a value there that is no number (the ingest refuses those) is
kept as NaN on PostgreSQL and as its text on SQLite, as the migration keeps old ones:
billing skips and reports it, as before. On PostgreSQL ``reading_rows`` is partitioned like
``readings`` was: the same month ranges (``reading_rows_y2026m03``...) and a default
partition.

Revision ID: ingest_0005
Revises: ingest_0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from alembic import op
from sqlalchemy import text

revision = "ingest_0005"
down_revision = "ingest_0004"
branch_labels = None
depends_on = None

OLD_COLUMNS = ("gateway_id", "epoch", "seq", "meter_id", "ts", "quantity", "value", "unit",
               "quality", "flags", "read_at", "received_at")
ROW_COLUMNS = ("ts", "seq", "read_at", "received_at", "epoch_id", "unit_id", "flags_id",
               "quality_id", "gateway_id", "meter_id", "quantity", "value")
QUALITIES = ((0, "good"), (1, "suspect"), (2, "invalid"))

# The readers' columns; LEFT JOINs on unique ids, so a query that does not use a text
# column does not join its lookup table (both databases remove such joins).
VIEW = """
CREATE VIEW readings AS
SELECT r.gateway_id, e.epoch, r.seq, r.meter_id, r.ts, r.quantity, {value} AS value, u.unit,
       q.quality, f.flags, r.read_at, r.received_at
FROM reading_rows r
LEFT JOIN reading_epochs e ON e.id = r.epoch_id
LEFT JOIN reading_units u ON u.id = r.unit_id
LEFT JOIN reading_qualities q ON q.id = r.quality_id
LEFT JOIN reading_flags f ON f.id = r.flags_id
"""

SQLITE_TRIGGER = """
CREATE TRIGGER readings_insert INSTEAD OF INSERT ON readings
BEGIN
    INSERT OR IGNORE INTO reading_epochs (gateway_id, epoch)
        VALUES (NEW.gateway_id, COALESCE(NEW.epoch, '0'));
    INSERT OR IGNORE INTO reading_units (unit) VALUES (NEW.unit);
    INSERT OR IGNORE INTO reading_flags (flags) VALUES (COALESCE(NEW.flags, '[]'));
    INSERT INTO reading_rows (ts, seq, read_at, received_at, epoch_id, unit_id, flags_id,
                              quality_id, gateway_id, meter_id, quantity, value)
    VALUES (NEW.ts, NEW.seq, NEW.read_at, NEW.received_at,
            (SELECT id FROM reading_epochs
             WHERE gateway_id = NEW.gateway_id AND epoch = COALESCE(NEW.epoch, '0')),
            (SELECT id FROM reading_units WHERE unit = NEW.unit),
            (SELECT id FROM reading_flags WHERE flags = COALESCE(NEW.flags, '[]')),
            (SELECT id FROM reading_qualities WHERE quality = NEW.quality),
            NEW.gateway_id, NEW.meter_id, NEW.quantity, NEW.value);
END
"""

PG_FUNCTIONS = """
CREATE FUNCTION sitegate_numeric(v text) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN v::numeric;
EXCEPTION WHEN others THEN
    BEGIN
        RETURN replace(v, '_', '')::numeric;  -- Python's Decimal took "1_000"
    EXCEPTION WHEN others THEN
        RETURN 'NaN';  -- never a number: billing skips it, as before
    END;
END $$;

CREATE FUNCTION readings_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    e integer; u integer; f integer; q smallint;
BEGIN
    NEW.epoch := COALESCE(NEW.epoch, '0');
    SELECT id INTO e FROM reading_epochs WHERE gateway_id = NEW.gateway_id
        AND epoch = NEW.epoch;
    IF e IS NULL THEN
        INSERT INTO reading_epochs (gateway_id, epoch) VALUES (NEW.gateway_id, NEW.epoch)
            ON CONFLICT (gateway_id, epoch) DO UPDATE SET epoch = EXCLUDED.epoch
            RETURNING id INTO e;
    END IF;
    SELECT id INTO u FROM reading_units WHERE unit = NEW.unit;
    IF u IS NULL THEN
        INSERT INTO reading_units (unit) VALUES (NEW.unit)
            ON CONFLICT (unit) DO UPDATE SET unit = EXCLUDED.unit RETURNING id INTO u;
    END IF;
    NEW.flags := COALESCE(NEW.flags, '[]');
    SELECT id INTO f FROM reading_flags WHERE flags = NEW.flags;
    IF f IS NULL THEN
        INSERT INTO reading_flags (flags) VALUES (NEW.flags)
            ON CONFLICT (flags) DO UPDATE SET flags = EXCLUDED.flags RETURNING id INTO f;
    END IF;
    SELECT id INTO q FROM reading_qualities WHERE quality = NEW.quality;
    INSERT INTO reading_rows (ts, seq, read_at, received_at, epoch_id, unit_id, flags_id,
                              quality_id, gateway_id, meter_id, quantity, value)
    VALUES (NEW.ts, NEW.seq, NEW.read_at, NEW.received_at, e, u, f, q, NEW.gateway_id,
            NEW.meter_id, NEW.quantity, sitegate_numeric(NEW.value));
    RETURN NEW;
END $$;
"""


def plain(value: object) -> object:
    """The plain decimal text of a stored value ("4.5E+3" -> "4500", "-0" -> "0"); a text
    that is no finite decimal stays as it was (billing skips it, as before)."""
    if not isinstance(value, str):
        return value
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError):
        return value
    if not d.is_finite():
        return value
    out = format(d.copy_abs() if not d else d, "f")
    return out if len(out) <= 64 else value


def _lookups() -> None:
    key = f"id INTEGER NOT NULL PRIMARY KEY{_auto()}"
    op.execute(f"CREATE TABLE reading_epochs ({key}, gateway_id VARCHAR(64) NOT NULL, "
               "epoch VARCHAR(40) NOT NULL, "
               "CONSTRAINT uq_reading_epochs_gateway_epoch UNIQUE (gateway_id, epoch))")
    op.execute(f"CREATE TABLE reading_units ({key}, unit VARCHAR(32) NOT NULL, "
               "CONSTRAINT reading_units_unit_key UNIQUE (unit))")
    op.execute(f"CREATE TABLE reading_flags ({key}, flags TEXT NOT NULL, "
               "CONSTRAINT reading_flags_flags_key UNIQUE (flags))")
    op.execute("INSERT INTO reading_flags (id, flags) VALUES (0, '[]')")
    op.execute("INSERT INTO reading_flags (flags) SELECT DISTINCT flags FROM readings "
               "WHERE flags <> '[]' ORDER BY flags")
    op.execute("CREATE TABLE reading_qualities (id SMALLINT NOT NULL PRIMARY KEY, "
               "quality VARCHAR(16) NOT NULL, "
               "CONSTRAINT reading_qualities_quality_key UNIQUE (quality))")
    op.execute("INSERT INTO reading_qualities (id, quality) VALUES "
               + ", ".join(f"({i}, '{q}')" for i, q in QUALITIES))
    op.execute("INSERT INTO reading_epochs (gateway_id, epoch) SELECT DISTINCT gateway_id, "
               "epoch FROM readings ORDER BY gateway_id, epoch")
    op.execute("INSERT INTO reading_units (unit) SELECT DISTINCT unit FROM readings "
               "ORDER BY unit")
    # A quality outside the three (none can be stored, but a hand-made row might be).
    op.execute("INSERT INTO reading_qualities (id, quality) SELECT 100 + ROW_NUMBER() OVER "
               "(ORDER BY quality), quality FROM (SELECT DISTINCT quality FROM readings "
               "WHERE quality NOT IN ('good', 'suspect', 'invalid')) x")


def _auto() -> str:
    return " GENERATED BY DEFAULT AS IDENTITY" if _pg() else ""


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _rows_ddl(value_type: str, partitioned: bool) -> str:
    return f"""
        CREATE TABLE reading_rows (
            ts TIMESTAMP WITH TIME ZONE NOT NULL,
            seq BIGINT NOT NULL,
            read_at TIMESTAMP WITH TIME ZONE,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            epoch_id INTEGER NOT NULL,
            unit_id INTEGER NOT NULL,
            flags_id INTEGER NOT NULL,
            quality_id SMALLINT NOT NULL,
            gateway_id VARCHAR(64) NOT NULL,
            meter_id VARCHAR(128) NOT NULL,
            quantity VARCHAR(64) NOT NULL,
            value {value_type} NOT NULL,
            CONSTRAINT uq_reading_rows_epoch_seq_ts UNIQUE (epoch_id, seq, ts)
        ){" PARTITION BY RANGE (ts)" if partitioned else ""}"""


_SELECT_OLD = """
    SELECT r.ts, r.seq, r.read_at, r.received_at, e.id, u.id, f.id, q.id, r.gateway_id,
           r.meter_id, r.quantity, {value}
    FROM readings r
    JOIN reading_epochs e ON e.gateway_id = r.gateway_id AND e.epoch = r.epoch
    JOIN reading_units u ON u.unit = r.unit
    JOIN reading_flags f ON f.flags = r.flags
    JOIN reading_qualities q ON q.quality = r.quality"""


def upgrade() -> None:
    bind = op.get_bind()
    cols = ", ".join(ROW_COLUMNS)
    _lookups()
    if _pg():
        op.execute(PG_FUNCTIONS)
        bounds = bind.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = 'readings' AND p.relnamespace = 'public'::regnamespace "
            "ORDER BY 1")).all()
        op.execute(_rows_ddl("NUMERIC", partitioned=True))
        op.execute("CREATE INDEX ix_reading_rows_series ON reading_rows "
                   "(gateway_id, meter_id, quantity, ts)")
        have_default = False
        for name, bound in bounds:  # the same months: readings_y2026m03 -> reading_rows_...
            new = "reading_rows" + name.removeprefix("readings")
            have_default |= bound == "DEFAULT"
            op.execute(f'CREATE TABLE "{new}" PARTITION OF reading_rows {bound}')
        if not have_default:
            op.execute("CREATE TABLE reading_rows_default PARTITION OF reading_rows DEFAULT")
        op.execute(f"INSERT INTO reading_rows ({cols}) "
                   + _SELECT_OLD.format(value="sitegate_numeric(r.value)"))
        op.execute("DROP TABLE readings")
        op.execute(VIEW.format(value="r.value::text"))
        op.execute("ALTER VIEW readings ALTER COLUMN epoch SET DEFAULT '0'")
        op.execute("ALTER VIEW readings ALTER COLUMN flags SET DEFAULT '[]'")
        # Identity ids go on after the ones given explicitly (0 = no flags).
        op.execute("SELECT setval(pg_get_serial_sequence('reading_flags', 'id'), "
                   "(SELECT max(id) FROM reading_flags) + 1, false)")
        op.execute("CREATE TRIGGER readings_insert INSTEAD OF INSERT ON readings "
                   "FOR EACH ROW EXECUTE FUNCTION readings_insert()")
        return
    dbapi = bind.connection.dbapi_connection
    dbapi.create_function("sitegate_plain", 1, plain, deterministic=True)
    op.execute(_rows_ddl("TEXT", partitioned=False))
    op.execute(f"INSERT INTO reading_rows ({cols}) "
               + _SELECT_OLD.format(value="sitegate_plain(r.value)") + " ORDER BY r.rowid")
    op.execute("CREATE INDEX ix_reading_rows_load ON reading_rows "
               "(gateway_id, meter_id, quantity, ts, value, unit_id, quality_id)")
    op.execute("DROP TABLE readings")
    op.execute(VIEW.format(value="r.value"))
    op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    """Back to one ``readings`` table of texts (values stay plain decimals)."""
    bind = op.get_bind()
    cols = ", ".join(OLD_COLUMNS)
    select_view = f"SELECT {cols} FROM readings"
    if _pg():
        bounds = bind.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = 'reading_rows' AND p.relnamespace = 'public'::regnamespace "
            "ORDER BY 1")).all()
        op.execute("""
            CREATE TABLE readings_0005 (
                gateway_id VARCHAR(64) NOT NULL, epoch VARCHAR(40) DEFAULT '0' NOT NULL,
                seq BIGINT NOT NULL, meter_id VARCHAR(128) NOT NULL,
                ts TIMESTAMP WITH TIME ZONE NOT NULL, quantity VARCHAR(64) NOT NULL,
                value TEXT NOT NULL, unit VARCHAR(32) NOT NULL, quality VARCHAR(16) NOT NULL,
                flags TEXT NOT NULL, read_at TIMESTAMP WITH TIME ZONE,
                received_at TIMESTAMP WITH TIME ZONE NOT NULL,
                CONSTRAINT uq_readings_gateway_epoch_seq_ts UNIQUE (gateway_id, epoch, seq, ts)
            ) PARTITION BY RANGE (ts)""")
        for name, bound in bounds:
            op.execute(f'CREATE TABLE "readings{name.removeprefix("reading_rows")}" '
                       f"PARTITION OF readings_0005 {bound}")
        op.execute(f"INSERT INTO readings_0005 ({cols}) {select_view}")
        op.execute("DROP VIEW readings")
        op.execute("DROP FUNCTION readings_insert()")
        op.execute("DROP FUNCTION sitegate_numeric(text)")
        op.execute("ALTER TABLE readings_0005 RENAME TO readings")
        op.execute("CREATE INDEX ix_readings_series ON readings "
                   "(gateway_id, meter_id, quantity, ts)")
    else:
        op.execute("""
            CREATE TABLE readings_0005 (
                gateway_id VARCHAR(64) NOT NULL, epoch VARCHAR(40) DEFAULT '0' NOT NULL,
                seq BIGINT NOT NULL, meter_id VARCHAR(128) NOT NULL, ts DATETIME NOT NULL,
                quantity VARCHAR(64) NOT NULL, value TEXT NOT NULL, unit VARCHAR(32) NOT NULL,
                quality VARCHAR(16) NOT NULL, flags TEXT NOT NULL, read_at DATETIME,
                received_at DATETIME NOT NULL,
                CONSTRAINT uq_readings_gateway_epoch_seq_ts UNIQUE (gateway_id, epoch, seq, ts))""")
        op.execute(f"INSERT INTO readings_0005 ({cols}) {select_view}")
        op.execute("DROP VIEW readings")
        op.execute("ALTER TABLE readings_0005 RENAME TO readings")
        op.execute("CREATE INDEX ix_readings_load ON readings "
                   "(gateway_id, meter_id, quantity, ts, value, unit, quality)")
    op.execute("DROP TABLE reading_rows")
    for name in ("reading_epochs", "reading_units", "reading_flags", "reading_qualities"):
        op.execute(f"DROP TABLE {name}")

