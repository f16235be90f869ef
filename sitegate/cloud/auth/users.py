"""People of the web console: users with roles per site, passwords, sessions, one-time links.

One authorization model with the API tokens: a role on a site *is* a set of the same
scopes a token holds (``ROLE_SCOPES``), and a page performing an operation asks
``scopes.needed(operation)`` exactly as an API route does. Tenants hold no site-wide
scope: they see the billing accounts named on their roles and nothing else.

Passwords are argon2id hashes (memory-hard: a leaked table costs an attacker memory per
guess). Session ids and link tokens are 256-bit random values kept as SHA-256 only (why that
suffices: ``tokens.py``). Failed logins are counted per e-mail and per client address over a
window: beyond the limit a login is refused before its password is even checked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine

from sitegate.cloud.auth.scopes import Scope, needed
from sitegate.cloud.store import users as store

ROLES = ("operator", "owner", "installer", "tenant")
ALL_SITES = "*"  # an operator of every site
ROLE_SCOPES: dict[str, frozenset[Scope]] = {
    "operator": frozenset(Scope),  # everything on their sites
    "owner": frozenset({Scope.READ, Scope.MONEY_READ}),  # figures and statements, read-only
    # equipment and commissioning, no money: without MONEY_READ every page and API route
    # that shows amounts refuses them (scopes.OPERATIONS decides, nothing else)
    "installer": frozenset({Scope.READ, Scope.GATEWAY_ADMIN}),
    "tenant": frozenset(),  # their own accounts only (Principal.accounts)
}
SESSION_HOURS = 12
LINK_DAYS = {"invite": 7, "reset": 1}  # an invitation waits a week, a reset a day
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE = {"user": 5, "ip": 30}  # failures per window before logins are refused
RESET_LIMIT = {"reset": 3, "reset-ip": 20}  # reset mails per window, per address and client
PASSWORD_CHARS = (10, 256)
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}")
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}|\*")
LANGUAGES = ("en", "de")

# argon2id with OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): a login costs
# one core ~50-250 ms here, so a burst of logins cannot starve a 2-core server; existing
# hashes of other settings are re-hashed at their next login (check_needs_rehash).
hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY = hasher.hash("not a password of anyone")  # same work for an unknown e-mail


class UserError(ValueError):
    """A user operation that cannot be done, said plainly."""


class LoginRefused(Exception):
    """Wrong e-mail or password (one message for both), disabled, or throttled."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Role:
    site: str
    role: str
    account: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who is logged in, with their roles: what the pages ask before they do anything."""

    id: int
    email: str
    name: str
    language: str
    roles: tuple[Role, ...] = field(default=())

    def scopes_on(self, site: str) -> frozenset[Scope]:
        out: set[Scope] = set()
        for r in self.roles:
            if r.site in (site, ALL_SITES):
                out |= ROLE_SCOPES[r.role]
        return frozenset(out)

    def may(self, operation: str, site: str) -> bool:
        """May perform ``operation`` on ``site`` (the scope the API would ask a token for)."""
        return needed(operation) in self.scopes_on(site)

    def sites(self, operation: str, known: list[str]) -> list[str]:
        """Of the ``known`` sites, those where ``operation`` is allowed."""
        return [s for s in known if self.may(operation, s)]

    def accounts(self, site: str) -> frozenset[str]:
        """The billing accounts that are this person's own on ``site`` (tenants)."""
        return frozenset(r.account for r in self.roles
                         if r.role == "tenant" and r.site == site and r.account)

    def tenant_sites(self) -> list[str]:
        return sorted({r.site for r in self.roles if r.role == "tenant"})

    @property
    def is_staff(self) -> bool:
        """Has a role other than tenant (sees the operator side)."""
        return any(r.role != "tenant" for r in self.roles)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(v: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    if v is None:
        return None
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def check_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise UserError(f"not an e-mail address: {email[:80]!r}")
    return email


def check_password(password: str) -> str:
    lo, hi = PASSWORD_CHARS
    if not lo <= len(password) <= hi:
        raise UserError(f"a password has {lo} to {hi} characters")
    return password


def check_role(role: str, site: str, account: str | None) -> Role:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not _SITE.fullmatch(site):
        raise UserError(f"not a site id: {site!r}")
    if site == ALL_SITES and role != "operator":
        raise UserError("only an operator may have every site (*)")
    if (role == "tenant") != (account is not None):
        raise UserError("a tenant needs --account (their billing account), other roles none")
    return Role(site, role, account)


# -- users ---------------------------------------------------------------------------------


def add_user(engine: Engine, email: str, name: str, role: Role, language: str = "en",
             password: str | None = None) -> int:
    """A new user with one role, or the role added to an existing user; their id."""
    email = check_email(email)
    if language not in LANGUAGES:
        raise UserError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    if not 1 <= len(name.strip()) <= 128:
        raise UserError("a name has 1 to 128 characters")
    hashed = hasher.hash(check_password(password)) if password is not None else None
    with engine.begin() as conn:
        row = store.user_by_email(conn, email)
        if row is None:
            uid = store.insert_user(conn, email=email, name=name.strip(),
                                    password_hash=hashed, language=language, disabled=False,
                                    created_at=_now())
        else:
            uid = row["id"]
            if hashed is not None:
                store.update_user(conn, uid, password_hash=hashed)
        store.add_role(conn, uid, role.site, role.role, role.account)
    return uid


def list_users(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        users = store.all_users(conn)
        roles = store.roles_of(conn, [u["id"] for u in users])
    return [{"id": u["id"], "email": u["email"], "name": u["name"],
             "language": u["language"], "disabled": bool(u["disabled"]),
             "password_set": u["password_hash"] is not None,
             "roles": [_role_text(r) for r in roles.get(u["id"], [])]} for u in users]


def _role_text(r: dict[str, object]) -> str:
    return f"{r['role']}@{r['site_id']}" + (f":{r['account_id']}" if r["account_id"] else "")


def disable(engine: Engine, email: str) -> int:
    """Disable a user and end their sessions at once; their id."""
    email = check_email(email)
    with engine.begin() as conn:
        row = store.user_by_email(conn, email)
        if row is None:
            raise UserError(f"no user {email!r} (see sitegate-cloud users list)")
        store.update_user(conn, row["id"], disabled=True)
        store.delete_sessions_of(conn, row["id"])
    return int(row["id"])


def set_language(engine: Engine, user_id: int, language: str) -> None:
    if language not in LANGUAGES:
        raise UserError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    with engine.begin() as conn:
        store.update_user(conn, user_id, language=language)


def principal(engine: Engine, user_id: int) -> Principal | None:
    with engine.connect() as conn:
        u = store.user_by_id(conn, user_id)
        if u is None or u["disabled"]:
            return None
        roles = store.roles_of(conn, [user_id]).get(user_id, [])
    return Principal(u["id"], u["email"], u["name"], u["language"],
                     tuple(Role(r["site_id"], r["role"], r["account_id"]) for r in roles))


# -- login, throttling, sessions -----------------------------------------------------------


def login(engine: Engine, email: str, password: str, client: str,
          now: datetime | None = None) -> int:
    """The user id for a right e-mail and password; LoginRefused otherwise (throttled
    before the password is looked at, so guessing gains nothing)."""
    now = now or _now()
    email = email.strip().lower()[:254]
    keys = [f"user:{email}", f"ip:{client}"]
    since = now - THROTTLE_WINDOW
    with engine.begin() as conn:
        store.forget_failures(conn, since)
        for key, limit in zip(keys, (THROTTLE["user"], THROTTLE["ip"]), strict=True):
            n, first = store.failures_since(conn, key, since)
            if n >= limit:
                wait = int(((_utc(first) or now) + THROTTLE_WINDOW - now).total_seconds()) + 1
                raise LoginRefused("too many failed logins: try again later",
                                   retry_after=max(wait, 1))
        row = store.user_by_email(conn, email)
    stored = row["password_hash"] if row is not None else None
    ok = _verify(stored or _DUMMY, password[:PASSWORD_CHARS[1]]) and stored is not None
    if not ok or row is None or row["disabled"]:
        with engine.begin() as conn:
            store.add_failure(conn, keys, now)
        raise LoginRefused("wrong e-mail or password")
    with engine.begin() as conn:
        store.forget_failures(conn, since, key=keys[0])
        if hasher.check_needs_rehash(stored):
            store.update_user(conn, row["id"], password_hash=hasher.hash(password))
    return int(row["id"])


def may_send_reset(engine: Engine, email: str, client: str,
                   now: datetime | None = None) -> bool:
    """Count a password-reset request; False once an address (or a client) asked too often
    in the window: no more mails to it then (the page answers the same either way)."""
    now = now or _now()
    keys = [f"reset:{email.strip().lower()[:254]}", f"reset-ip:{client}"]
    since = now - THROTTLE_WINDOW
    with engine.begin() as conn:
        for key, limit in zip(keys, RESET_LIMIT.values(), strict=True):
            if store.failures_since(conn, key, since)[0] >= limit:
                return False
        store.add_failure(conn, keys, now)
    return True


def _verify(hashed: str, password: str) -> bool:
    try:
        return hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Session:
    cookie: str  # the cookie's value: shown to the browser only
    user_id: int
    csrf: str
    expires_at: datetime


def start_session(engine: Engine, user_id: int, now: datetime | None = None) -> Session:
    now = now or _now()
    s = Session(secrets.token_urlsafe(32), user_id, secrets.token_urlsafe(32),
                now + timedelta(hours=SESSION_HOURS))
    with engine.begin() as conn:
        store.delete_expired_sessions(conn, now)
        store.insert_session(conn, id_hash=digest(s.cookie), user_id=user_id, csrf=s.csrf,
                             created_at=now, expires_at=s.expires_at)
    return s


def find_session(engine: Engine, cookie: str, now: datetime | None = None) -> Session | None:
    if not 20 <= len(cookie) <= 100:
        return None
    with engine.connect() as conn:
        row = store.session_by_hash(conn, digest(cookie))
    if row is None or _utc(row["expires_at"]) <= (now or _now()):  # type: ignore[operator]
        return None
    return Session(cookie, row["user_id"], row["csrf"], _utc(row["expires_at"]))  # type: ignore[arg-type]


def end_session(engine: Engine, cookie: str) -> None:
    with engine.begin() as conn:
        store.delete_session(conn, digest(cookie))


# -- one-time links (invitation, password reset) -------------------------------------------


def make_link(engine: Engine, email: str, purpose: str, now: datetime | None = None) -> str:
    """A one-time token for ``email`` (the link is ``<console>/web/link/<token>``)."""
    now = now or _now()
    email = check_email(email)
    with engine.begin() as conn:
        row = store.user_by_email(conn, email)
        if row is None:
            raise UserError(f"no user {email!r}")
        if row["disabled"]:
            raise UserError(f"user {email} is disabled")
        token = secrets.token_urlsafe(32)
        store.insert_link(conn, token_hash=digest(token), user_id=row["id"], purpose=purpose,
                          created_at=now, expires_at=now + timedelta(days=LINK_DAYS[purpose]))
    return token


def link_user(engine: Engine, token: str, now: datetime | None = None) -> dict | None:
    """The user a still-valid link is for (and its purpose), or None."""
    if not 20 <= len(token) <= 100:
        return None
    with engine.connect() as conn:
        link = store.link_by_hash(conn, digest(token))
        if link is None or link["used_at"] is not None:
            return None
        if _utc(link["expires_at"]) <= (now or _now()):  # type: ignore[operator]
            return None
        user = store.user_by_id(conn, link["user_id"])
    if user is None or user["disabled"]:
        return None
    return {"user_id": user["id"], "email": user["email"], "name": user["name"],
            "purpose": link["purpose"]}


def use_link(engine: Engine, token: str, password: str, now: datetime | None = None) -> int:
    """Set the password through a one-time link (which dies with it); the user id. Every
    other session of the user ends: a reset locks out whoever knew the old password."""
    now = now or _now()
    check_password(password)
    found = link_user(engine, token, now)
    if found is None:
        raise UserError("this link is not valid (used, expired or unknown): ask for a new one")
    hashed = hasher.hash(password)
    with engine.begin() as conn:
        if not store.use_link(conn, digest(token), now):
            raise UserError("this link was just used")
        store.update_user(conn, found["user_id"], password_hash=hashed)
        store.delete_sessions_of(conn, found["user_id"])
    return int(found["user_id"])
