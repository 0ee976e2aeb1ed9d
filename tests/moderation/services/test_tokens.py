"""API tokens through the service: only the hash is stored, names are unique, revoke is final."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from moderation.config import MIN_SECRET_CHARS
from moderation.db.models import ApiToken
from moderation.db.session import make_sessionmaker, session_scope
from moderation.services.tokens import (
    Principal,
    TokenExists,
    TokenResolver,
    TooManyFailures,
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


STATIC = [
    "ops:admin:ops-admin-secret-0000000000000000000001",
    "sam:submitter:sam-submitter-secret-000000000000000002",
]


def test_a_static_token_name_is_refused_for_a_db_token(engine):
    """Finding: `tokens add` accepted a name a static token already used."""
    sessions = make_sessionmaker(engine)
    with pytest.raises(TokenExists, match="MODERATION_API_TOKENS"), session_scope(sessions) as s:
        create_token(s, "ops", "reviewer", static_names=["ops", "sam"])
    with session_scope(sessions) as s:
        assert list_tokens(s) == []
        secret = create_token(s, "rita", "reviewer", static_names=["ops", "sam"])
    assert len(secret) >= MIN_SECRET_CHARS  # generated secrets meet the static rule too


def test_one_resolver_for_static_and_db_tokens(engine, settings_factory):
    sessions = make_sessionmaker(engine)
    resolver = TokenResolver(settings_factory(api_tokens=STATIC), sessions, ttl_s=0)
    with session_scope(sessions) as s:
        secret = create_token(s, "rita", "reviewer")
    assert resolver.authenticate(STATIC[0].split(":", 2)[2]) == Principal("ops", "admin")
    assert resolver.authenticate(secret) == Principal("rita", "reviewer", "db")
    assert resolver.authenticate("nope" * 10) is None
    assert resolver.current("rita", "db") == Principal("rita", "reviewer", "db")
    assert resolver.current("ops", "static") == Principal("ops", "admin")
    assert resolver.current("ops", "db") is None and resolver.current("x", "other") is None
    with session_scope(sessions) as s:
        revoke_token(s, "rita", NOW)
    assert resolver.current("rita", "db") is None  # uncached: revocation is seen at once
    assert resolver.authenticate(secret) is None


def test_has_viewer_counts_reviewer_and_admin_tokens_of_both_sources(engine, settings_factory):
    sessions = make_sessionmaker(engine)
    submitters = settings_factory(api_tokens=STATIC[1:])
    assert not TokenResolver(submitters, sessions).has_viewer()
    assert TokenResolver(settings_factory(api_tokens=STATIC), sessions).has_viewer()
    with session_scope(sessions) as s:
        create_token(s, "sub2", "submitter")
    assert not TokenResolver(submitters, sessions).has_viewer()
    with session_scope(sessions) as s:
        create_token(s, "rita", "reviewer")
    assert TokenResolver(submitters, sessions).has_viewer()
    with session_scope(sessions) as s:
        revoke_token(s, "rita", NOW)
    assert not TokenResolver(submitters, sessions).has_viewer()


def test_failures_per_address_are_limited(engine, settings_factory):
    clock = [100.0]
    settings = settings_factory(api_tokens=STATIC, auth_max_failures=3, auth_failure_window_s=60)
    resolver = TokenResolver(settings, make_sessionmaker(engine), clock=lambda: clock[0])
    good = STATIC[0].split(":", 2)[2]
    for _ in range(3):
        assert resolver.authenticate("wrong-" * 6, client="10.0.0.1") is None
    with pytest.raises(TooManyFailures) as refused:
        resolver.authenticate(good, client="10.0.0.1")  # even a good token waits
    assert refused.value.retry_after == 60
    assert resolver.authenticate(good, client="10.0.0.2") == Principal("ops", "admin")
    clock[0] += 61
    assert resolver.authenticate(good, client="10.0.0.1") == Principal("ops", "admin")
