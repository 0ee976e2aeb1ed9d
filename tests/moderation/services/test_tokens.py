"""API tokens through the service: only the hash is stored, names are unique, revoke is final."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from moderation.db.models import ApiToken
from moderation.db.session import make_sessionmaker, session_scope
from moderation.services.tokens import (
    TokenExists,
    create_token,
    find_token,
    list_tokens,
    revoke_token,
    token_hash,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_create_find_list_revoke(engine):
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        secret = create_token(s, "ci", "submitter")
    with session_scope(sessions) as s:
        assert s.scalars(select(ApiToken.token_sha256)).all() == [token_hash(secret)]
        assert find_token(s, secret) == ("ci", "submitter")
        assert find_token(s, secret + "x") is None
        assert [(t.name, t.role, t.revoked_at) for t in list_tokens(s)] == [
            ("ci", "submitter", None)
        ]
    with pytest.raises(TokenExists, match="'ci' already exists"), session_scope(sessions) as s:
        create_token(s, "ci", "admin")
    with pytest.raises(ValueError, match="unknown role 'root'"), session_scope(sessions) as s:
        create_token(s, "other", "root")
    with session_scope(sessions) as s:
        assert revoke_token(s, "ci", NOW)
        assert not revoke_token(s, "ci", NOW)  # already revoked
        assert find_token(s, secret) is None
