"""Bearer tokens → principals with a role (settings tokens, or DB tokens by their sha256)."""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db.retry import in_transaction
from moderation.services.tokens import find_token, token_hash

__all__ = ["ROLE_RANK", "Principal", "TokenAuthenticator"]

ROLE_RANK = {"submitter": 0, "reviewer": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def has(self, role: str) -> bool:
        """Roles are ordered admin > reviewer > submitter; a higher one may do what a lower may."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class TokenAuthenticator:
    """Looks tokens up in settings first, then in ``api_tokens`` (cached ``ttl_s`` seconds,
    which bounds how long a revoked DB token keeps working)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], ttl_s: float = 10):
        self._static = {
            token_hash(t.secret): Principal(t.name, t.role) for t in settings.parsed_tokens()
        }
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, secret: str) -> Principal | None:
        digest = token_hash(secret)
        for known, principal in self._static.items():
            if hmac.compare_digest(known, digest):
                return principal
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = in_transaction(self._sessions, lambda s: find_token(s, secret), give_up_after_s=5)
        principal = Principal(*found) if found else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, now + self._ttl_s)
        return principal
