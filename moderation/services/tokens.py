"""API tokens stored in the database: create (the secret is shown once), find, list, revoke.

Only a token's sha256 is stored; ``moderation.api.auth`` looks callers up by it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from moderation.config import ROLES
from moderation.db.repositories import tokens as repo
from moderation.db.repositories.tokens import TokenRecord

__all__ = [
    "TokenExists",
    "TokenRecord",
    "create_token",
    "find_token",
    "list_tokens",
    "revoke_token",
    "token_hash",
]


class TokenExists(ValueError):
    """A token with that name exists (revoked or not: names are never reused)."""


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, name: str, role: str) -> str:
    """Store a new token and return its secret (shown once; only its hash is kept).

    Raises ``ValueError`` for an unknown role and ``TokenExists`` for a taken name (the
    session's transaction is then unusable: let it roll back)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    secret = secrets.token_urlsafe(32)
    try:
        repo.insert_token(session, name, role, token_hash(secret))
    except IntegrityError:
        raise TokenExists(f"a token named {name!r} already exists") from None
    return secret


def find_token(session: Session, secret: str) -> tuple[str, str] | None:
    """(name, role) of the live token whose secret is ``secret``, or None."""
    return repo.find_token(session, token_hash(secret))


def list_tokens(session: Session) -> list[TokenRecord]:
    return repo.list_tokens(session)


def revoke_token(session: Session, name: str, now: dt.datetime) -> bool:
    """True when a live token named ``name`` was revoked."""
    return repo.revoke_token(session, name, now)
