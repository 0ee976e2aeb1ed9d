"""API tokens kept in the DB: only the sha256 of a token is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from moderation.config import ROLES
from moderation.db.models import ApiToken

__all__ = ["TokenRecord", "create_token", "find_token", "list_tokens", "revoke_token", "token_hash"]


@dataclass(frozen=True)
class TokenRecord:
    name: str
    role: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, name: str, role: str) -> str:
    """Store a new token and return its secret (shown once; only its hash is kept)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    secret = secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role, token_sha256=token_hash(secret)))
    session.flush()
    return secret


def find_token(session: Session, secret: str) -> tuple[str, str] | None:
    """(name, role) of a live token, or None."""
    row = session.execute(
        select(ApiToken.name, ApiToken.role).where(
            ApiToken.token_sha256 == token_hash(secret), ApiToken.revoked_at.is_(None)
        )
    ).first()
    return (row[0], row[1]) if row else None


def revoke_token(session: Session, name: str, now: dt.datetime) -> bool:
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_tokens(session: Session) -> list[TokenRecord]:
    rows = session.scalars(select(ApiToken).order_by(ApiToken.name))
    return [TokenRecord(r.name, r.role, r.created_at, r.revoked_at) for r in rows]
