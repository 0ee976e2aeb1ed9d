"""Scorer profiles on both backends: one row per worker, upserted; the live window; the
registration service and its heartbeat."""

from __future__ import annotations

import datetime as dt
import logging
import time

import pytest
from sqlalchemy import func, select

from moderation.db import make_sessionmaker
from moderation.db.models import ScorerProfileRow
from moderation.db.repositories.scorer_profiles import live_profiles, register_profile
from moderation.scoring.profiles import profile_categories
from moderation.services.scorer_profiles import (
    ProfileHeartbeat,
    refresh_interval_s,
    register_scorer,
    registered_scorer,
)
from tests.fakes import ColourScorer

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
GME = {"sexual": {"scale": "gme_cosine", "severity": 3, "base": 0.18}}


def _register(session, worker="gpu0@a", *, at=T0, model="gme-2b", categories=GME):
    return register_profile(session, worker=worker, model_id=model, backend="gme",
                            catalog_version="c1", categories=categories, now=at)  # fmt: skip


def test_a_worker_has_one_row_refreshed_in_place(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        first = _register(s)
    with sessions.begin() as s:
        again = _register(s, at=T0 + dt.timedelta(minutes=5))
    assert (again.first_seen_at, again.last_seen_at) == (T0, T0 + dt.timedelta(minutes=5))
    assert again.categories == first.categories == GME
    with sessions.begin() as s:  # another model on the same worker: a new first sighting
        changed = _register(s, at=T0 + dt.timedelta(hours=1), model="gme-7b")
    assert changed.model_id == "gme-7b" and changed.first_seen_at == T0 + dt.timedelta(hours=1)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ScorerProfileRow)) == 1


def test_live_profiles_are_those_seen_within_the_window_newest_first(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        _register(s, "old@a", at=T0 - dt.timedelta(days=2))
        _register(s, "gpu0@a", at=T0 - dt.timedelta(minutes=10))
        _register(s, "gpu1@b", at=T0)
    with sessions() as s:
        live = live_profiles(s, since=T0 - dt.timedelta(days=1))
    assert [p.worker for p in live] == ["gpu1@b", "gpu0@a"]


def test_register_scorer_stores_its_profile(engine):
    sessions = make_sessionmaker(engine)
    record = register_scorer(sessions, ColourScorer(), worker="scan@h", backend="colour", now=T0)
    assert (record.model_id, record.catalog_version) == ("test-colour-v1", "test-catalog")
    assert record.categories == profile_categories(ColourScorer())


def test_refresh_interval_keeps_a_live_process_inside_the_window(settings_factory):
    assert refresh_interval_s(settings_factory()) == 300.0
    assert refresh_interval_s(settings_factory(adjust_profile_window_s=600)) == 150.0


def test_heartbeat_registers_until_stopped_and_survives_failures(caplog):
    calls = []

    def register():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database away")

    beat = ProfileHeartbeat(register, interval_s=0.01)
    beat.start()
    deadline = time.monotonic() + 10
    while len(calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    beat.stop()
    stopped_at = len(calls)
    assert stopped_at >= 4 and beat.beats == stopped_at - 1  # the failed one is not counted
    assert "cannot register the scorer profile: database away" in caplog.text
    time.sleep(0.05)
    assert len(calls) == stopped_at
    with pytest.raises(ValueError, match="positive"):
        ProfileHeartbeat(register, interval_s=0)


def test_registered_scorer_registers_on_entry(engine, settings_factory, caplog):
    sessions = make_sessionmaker(engine)
    with caplog.at_level(logging.WARNING):
        with registered_scorer(sessions, ColourScorer(), settings_factory(), worker="scan@h") as hb:
            assert hb.beats == 1
            with sessions() as s:
                [live] = live_profiles(s, since=T0)
            assert live.worker == "scan@h" and live.backend == "open_nsfw"
    assert caplog.text == ""
