"""The one identity of the API and the dashboard: tokens from settings
(``MODERATION_API_TOKENS``) and tokens stored in the database (``moderation tokens add``:
the secret is shown once, only its sha256 is kept), resolved by ``TokenResolver``.

Token names are unique across both sources: ``create_token`` refuses a name a static token
uses, and settings refuse repeated static names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from moderation.config import ROLES, Settings
from moderation.db.repositories import audit_log
from moderation.db.repositories import tokens as repo
from moderation.db.repositories.tokens import TokenRecord
from moderation.db.retry import in_transaction
from moderation.services.throttle import FailureLimiter

__all__ = [
    "ROLE_RANK",
    "VIEWER_ROLES",
    "Principal",
    "TokenExists",
    "TokenRecord",
    "TokenResolver",
    "TooManyFailures",
    "create_token",
    "find_token",
    "list_tokens",
    "revoke_token",
    "token_hash",
]


MAX_NAME = 100  # api_tokens.name
ROLE_RANK = {"submitter": 0, "reviewer": 1, "admin": 2}
VIEWER_ROLES = ("reviewer", "admin")  # who may log in to the dashboard


class TokenExists(ValueError):
    """A token with that name exists (revoked or not: names are never reused), in the
    database or among the static tokens of ``MODERATION_API_TOKENS``."""


class TooManyFailures(Exception):
    """This client address failed to authenticate too often: retry after ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins from this address; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """Who a token stands for: its name, role and source (``static`` or ``db``)."""

    name: str
    role: str
    source: str = "static"

    def has(self, role: str) -> bool:
        """Roles are ordered admin > reviewer > submitter; a higher one may do what a lower may."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class TokenResolver:
    """Secrets → principals for every entry point: settings tokens first, then
    ``api_tokens`` by sha256 (cached ``ttl_s`` seconds, which bounds how long a revoked DB
    token keeps working on the API). ``current`` re-reads a principal by name, uncached: the
    dashboard calls it on every request so that a revoked token ends its sessions at once.

    ``authenticate(secret, client=…)`` counts failures per client address in ``limiter`` and
    raises ``TooManyFailures`` once the address is over the limit.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        ttl_s: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ):
        tokens = settings.parsed_tokens()
        self._static = {token_hash(t.secret): Principal(t.name, t.role) for t in tokens}
        self._static_roles = {t.name: t.role for t in tokens}
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()
        self.limiter = FailureLimiter(
            settings.auth_max_failures, settings.auth_failure_window_s, clock
        )

    @property
    def static_names(self) -> frozenset[str]:
        return frozenset(self._static_roles)

    def authenticate(
        self, secret: str, *, client: str | None = None, fresh: bool = False
    ) -> Principal | None:
        """The principal of ``secret``, or None. With ``client`` (an address), failures are
        counted and an address over the limit gets ``TooManyFailures`` before any lookup.
        ``fresh`` skips the cache (the dashboard's login: a token revoked a second ago
        must not start a session)."""
        if client is not None:
            wait = self.limiter.retry_after(client)
            if wait is not None:
                raise TooManyFailures(wait)
        principal = self._resolve(secret, fresh)
        if principal is None and client is not None:
            self.limiter.record_failure(client)
        return principal

    def _resolve(self, secret: str, fresh: bool) -> Principal | None:
        digest = token_hash(secret)
        for known, principal in self._static.items():
            if hmac.compare_digest(known, digest):
                return principal
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[1] > now and not fresh:
            return cached[0]
        found = in_transaction(self._sessions, lambda s: find_token(s, secret), give_up_after_s=5)
        principal = Principal(found[0], found[1], "db") if found else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, now + self._ttl_s)
        return principal

    def current(self, name: str, source: str) -> Principal | None:
        """The principal named ``name`` if its token is still valid (a static token still
        configured, a DB token not revoked), with its current role; else None."""
        if source == "static":
            role = self._static_roles.get(name)
        elif source == "db":
            role = in_transaction(
                self._sessions, lambda s: repo.find_live_named(s, name), give_up_after_s=5
            )
        else:
            role = None
        return Principal(name, role, source) if role is not None else None

    def has_viewer(self) -> bool:
        """Whether any credential may log in to the dashboard (a reviewer or admin token,
        static or live in the database)."""
        if any(role in VIEWER_ROLES for role in self._static_roles.values()):
            return True
        return in_transaction(
            self._sessions, lambda s: repo.any_live_with_role(s, VIEWER_ROLES), give_up_after_s=5
        )


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    name: str,
    role: str,
    *,
    static_names: Iterable[str] = (),
    actor: str = "system",
) -> str:
    """Store a new token and return its secret (shown once; only its hash is kept).

    Raises ``ValueError`` for an unknown role or an empty name and ``TokenExists`` for a
    taken name — in the database or in ``static_names`` (the names of the settings' tokens);
    after a database clash the session's transaction is unusable: let it roll back."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    if not name.strip():
        raise ValueError("a token needs a name")
    if len(name) > MAX_NAME:
        raise ValueError(f"a token name has at most {MAX_NAME} characters")
    if name in set(static_names):
        raise TokenExists(
            f"a token named {name!r} already exists in MODERATION_API_TOKENS: choose another name"
        )
    secret = secrets.token_urlsafe(32)
    try:
        repo.insert_token(session, name, role, token_hash(secret))
    except IntegrityError:
        raise TokenExists(f"a token named {name!r} already exists") from None
    audit_log.record_action(
        session, actor=actor, action="tokens.add", target_type="api_token",
        target_id=_target(name), details={"name": name, "role": role},
    )  # fmt: skip
    return secret


def find_token(session: Session, secret: str) -> tuple[str, str] | None:
    """(name, role) of the live token whose secret is ``secret``, or None."""
    return repo.find_token(session, token_hash(secret))


def list_tokens(session: Session) -> list[TokenRecord]:
    return repo.list_tokens(session)


def revoke_token(session: Session, name: str, now: dt.datetime, *, actor: str = "system") -> bool:
    """True when a live token named ``name`` was revoked (and audit-logged)."""
    revoked = repo.revoke_token(session, name, now)
    if revoked:
        audit_log.record_action(
            session, actor=actor, action="tokens.revoke", target_type="api_token",
            target_id=_target(name), details={"name": name},
        )  # fmt: skip
    return revoked


def _target(name: str) -> str:
    # audit_log.target_id holds 64 characters, a token name 100: the details keep it whole
    return name[:64]
