"""API bearer tokens: created once, shown once, kept only as a SHA-256 hash.

A token is 32 random bytes (``secrets.token_urlsafe``) behind a ``sgt_`` prefix, so that it is
recognisable in a leaked log. Why SHA-256 and not argon2: a slow, salted hash protects
low-entropy secrets (passwords) against guessing once the table has leaked; a 256-bit random
token cannot be guessed whatever the hash costs, so argon2 would add only ~50 ms of CPU to
every API request (and a lever for overloading the server) with no gain. An unsalted hash
also lets the lookup be one indexed equality.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update

from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.store import tables as t

PREFIX = "sgt_"
MAX_TOKEN_CHARS = 128  # what a presented token may be at most; ours are 47
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,63}")
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TokenError(ValueError):
    """A token operation that cannot be done (bad name, unknown token...), said plainly."""


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    scopes: frozenset[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_dict(self, now: datetime) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "scopes": sorted(self.scopes),
                "created_at": self.created_at, "expires_at": self.expires_at,
                "revoked_at": self.revoked_at, "state": self.state(now)}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_expiry(text: str, now: datetime) -> datetime:
    """``90m``, ``24h``, ``30d``, ``2w`` from now, or an ISO date/time (a date: its start, UTC)."""
    if m := _DURATION.fullmatch(text.strip()):
        return now + timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TokenError(f"--expires {text!r}: say 90m, 24h, 30d, 2w or an ISO date") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= now:
        raise TokenError(f"--expires {text!r} is in the past")
    return when.astimezone(UTC)


def create(engine: Engine, name: str, scopes: frozenset[Scope],
           expires_at: datetime | None = None) -> tuple[str, Token]:
    """A new token: (the token itself, to be shown once; its stored record)."""
    if not _NAME.fullmatch(name):
        raise TokenError(f"token name {name!r}: 1-64 letters, digits, space or ._@:-")
    if not scopes:
        raise TokenError("a token needs at least one scope")
    token = PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        new_id = conn.execute(t.api_tokens.insert().values(
            name=name, token_hash=digest(token), scopes=" ".join(sorted(scopes)),
            created_at=now, expires_at=expires_at)).inserted_primary_key[0]
    return token, Token(int(new_id), name, scopes, now, expires_at, None)


def list_tokens(engine: Engine) -> list[Token]:
    with engine.connect() as conn:
        rows = conn.execute(select(t.api_tokens).order_by(t.api_tokens.c.id)).mappings().all()
    return [_token(r) for r in rows]


def revoke(engine: Engine, ref: str) -> Token:
    """Revoke by id, or by name when exactly one active token has it."""
    now = datetime.now(UTC)
    active = [x for x in list_tokens(engine) if x.state(now) != "revoked"]
    found = [x for x in active if str(x.id) == ref] or [x for x in active if x.name == ref]
    if not found:
        raise TokenError(f"no unrevoked token {ref!r} (see sitegate-cloud tokens list)")
    if len(found) > 1:
        raise TokenError(f"{len(found)} tokens are named {ref!r}: revoke one by its id "
                         f"({', '.join(str(x.id) for x in found)})")
    with engine.begin() as conn:
        conn.execute(update(t.api_tokens).where(t.api_tokens.c.id == found[0].id)
                     .values(revoked_at=now))
    return replace(found[0], revoked_at=now)


def verify(engine: Engine, presented: str, now: datetime | None = None) -> Token | None:
    """The active token ``presented`` is, or None (unknown, revoked, expired, malformed)."""
    if not presented.startswith(PREFIX) or len(presented) > MAX_TOKEN_CHARS:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(t.api_tokens).where(
            t.api_tokens.c.token_hash == digest(presented))).mappings().first()
    if row is None:
        return None
    token = _token(row)
    return token if token.state(now or datetime.now(UTC)) == "active" else None


def _token(r: object) -> Token:
    d = dict(r)  # type: ignore[call-overload]
    return Token(int(d["id"]), d["name"], frozenset(Scope(s) for s in d["scopes"].split()),
                 _utc(d["created_at"]), _utc(d["expires_at"]), _utc(d["revoked_at"]))


def _utc(v: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    if v is None:
        return None
    return v if v.tzinfo else v.replace(tzinfo=UTC)
