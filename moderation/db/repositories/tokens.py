"""API tokens kept in the DB: only the sha256 of a token is stored."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from moderation.db.models import ApiToken

__all__ = [
    "TokenRecord",
    "any_live_with_role",
    "find_live_named",
    "find_token",
    "insert_token",
    "list_tokens",
    "revoke_token",
]


@dataclass(frozen=True)
class TokenRecord:
    name: str
    role: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def insert_token(session: Session, name: str, role: str, token_sha256: str) -> None:
    """Store a token by its hash (``IntegrityError`` at flush when the name is taken)."""
    session.add(ApiToken(name=name, role=role, token_sha256=token_sha256))
    session.flush()


def find_token(session: Session, token_sha256: str) -> tuple[str, str] | None:
    """(name, role) of the live token with that hash, or None."""
    row = session.execute(
        select(ApiToken.name, ApiToken.role).where(
            ApiToken.token_sha256 == token_sha256, ApiToken.revoked_at.is_(None)
        )
    ).first()
    return (row[0], row[1]) if row else None


def find_live_named(session: Session, name: str) -> str | None:
    """The role of the live (not revoked) token named ``name``, or None."""
    return session.scalar(
        select(ApiToken.role).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    )


def any_live_with_role(session: Session, roles: tuple[str, ...]) -> bool:
    found = session.scalar(
        select(ApiToken.id).where(ApiToken.role.in_(roles), ApiToken.revoked_at.is_(None)).limit(1)
    )
    return found is not None


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
