"""The web console's tables (Alembic branch ``web``), on the one ``tables.metadata``.

People who log in, their roles per site, their browser sessions, the one-time links that
invite them or reset a password, and failed logins (throttling). Secrets are never kept:
passwords as argon2id hashes, session ids and link tokens as SHA-256 (they are 256-bit
random, see ``sitegate.cloud.auth.tokens`` for why that is enough).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sitegate.cloud.store.tables import metadata

TZ = DateTime(timezone=True)

web_users = Table(
    "web_users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),  # lower case
    Column("name", String(128), nullable=False),
    Column("password_hash", Text),  # argon2id; None until an invitation is accepted
    Column("language", String(8), nullable=False, default="en"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", TZ, nullable=False),
)

# A role on one site ("*": every site, operators only). A tenant's role names the billing
# account whose invoices, consumption and badges are theirs.
web_roles = Table(
    "web_roles", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("web_users.id"), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # operator owner installer tenant
    Column("account_id", String(64)),  # tenant only
    UniqueConstraint("user_id", "site_id", "role", "account_id", name="uq_web_roles"),
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the cookie's value
    Column("user_id", Integer, ForeignKey("web_users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),  # the forms' token for this session
    Column("created_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Index("ix_web_sessions_user", "user_id"),
)

# Invitation and password-reset links: used once, then dead; expire unused.
web_links = Table(
    "web_links", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("web_users.id"), nullable=False),
    Column("purpose", String(16), nullable=False),  # invite | reset
    Column("created_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("used_at", TZ),
)

# Failed logins, by what was tried (the e-mail) and by client address: the throttle counts
# them over a window; old rows are deleted as new ones come.
web_login_failures = Table(
    "web_login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),  # "user:<email>" or "ip:<address>"
    Column("at", TZ, nullable=False),
    Index("ix_web_login_failures_key", "key", "at"),
)

# Site administration: where a site is in its life, and the notes and open issues on it
# that someone must address and close (Alembic web_0002).
SITE_STATES = ("setup", "commissioning", "operating", "deactivated")

web_site_status = Table(
    "web_site_status", metadata,
    Column("site_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # one of SITE_STATES
    Column("updated_at", TZ, nullable=False),
    Column("updated_by", String(254), nullable=False),
)

web_site_notes = Table(
    "web_site_notes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # note | issue (an issue is closed by someone)
    Column("text", Text, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("created_by", String(254), nullable=False),
    Column("closed_at", TZ),
    Column("closed_by", String(254)),
    Index("ix_web_site_notes_site", "site_id"),
)
