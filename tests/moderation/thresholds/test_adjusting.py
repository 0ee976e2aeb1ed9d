"""Evidence from the DB → adjuster → threshold versions (both backends, and the CLI)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

import pytest
from sqlalchemy import select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import AuditLogEntry, AuditSample, Image, Job, Review, ReviewItem
from moderation.db.repositories import thresholds as versions
from moderation.db.repositories.reviews import category_evidence
from moderation.db.repositories.scorer_profiles import register_profile
from moderation.db.types import utcnow
from moderation.domain import ReviewItemKind, RiskTier
from moderation.scoring.catalog import load_catalog
from moderation.services.scorer_profiles import register_scorer
from moderation.thresholds.adjusting import adjust_thresholds, propose, run_configured
from moderation.thresholds.evidence import Evidence
from moderation.thresholds.noise import corrected_recall
from moderation.thresholds.resolver import resolve_thresholds
from moderation.thresholds.tiers import ladder_from_base, preset_thresholds
from tests.fakes import ColourScorer
from tests.moderation.cli.runner import db_session, fails, ok

SCALES = {"sexual": "probability"}


def seed_evidence(sessions, *, caught: int, audits: list[tuple[float, bool]], at: dt.datetime):
    """``caught`` queue items (score 0.5, violation) and audits (score, violation) at π 0.5,
    each reviewed by rita."""
    with sessions.begin() as s:
        rows = [(0.5, True, ReviewItemKind.QUEUE)] * caught
        rows += [(score, y, ReviewItemKind.AUDIT) for score, y in audits]
        for score, violation, kind in rows:
            image = Image(sha256=uuid.uuid4().hex * 2, byte_size=1)
            s.add(image)
            s.flush()
            job = Job(image_id=image.id)
            s.add(job)
            s.flush()
            pi = 1.0 if kind == ReviewItemKind.QUEUE else 0.5
            s.add(ReviewItem(job_id=job.id, kind=kind, category="sexual", score=score,
                             tier=RiskTier.CLEAR, priority=0, inclusion_probability=pi,
                             created_at=at))  # fmt: skip
            if kind == ReviewItemKind.AUDIT:
                s.add(AuditSample(job_id=job.id, category="sexual", stratum="near", score=score,
                                  inclusion_probability=pi, sampled_at=at))  # fmt: skip
            s.add(Review(job_id=job.id, reviewer="rita", category="sexual",
                         label="violation" if violation else "not_violation",
                         created_at=at + dt.timedelta(minutes=1)))  # fmt: skip


def misses_below(n_audits: int = 300, misses: int = 60) -> list[tuple[float, bool]]:
    """Audits just below 0.30: ``misses`` violations at 0.28, the rest clean at 0.21."""
    return [(0.28, True)] * misses + [(0.21, False)] * (n_audits - misses)


def run(sessions, *, adjuster="recall_target", dry_run=False, horizon_s=86400.0):
    with sessions.begin() as s:
        return adjust_thresholds(
            s,
            preset_thresholds(SCALES),
            adjuster=adjuster,
            now=utcnow(),
            horizon_s=horizon_s,
            dry_run=dry_run,
            created_by="test",
        )


def test_recall_target_lowers_on_audited_misses_and_records_its_evidence(engine):
    sessions = make_sessionmaker(engine)
    seed_evidence(sessions, caught=100, audits=misses_below(), at=utcnow())
    with sessions() as s:
        ev = category_evidence(s, "sexual")
    assert (ev.n, ev.positives, int(ev.sampled.sum())) == (400, 160, 300)
    [dry] = run(sessions, dry_run=True)
    assert dry.changed and dry.version_id is None and dry.proposal.value < 0.30
    with sessions() as s:
        assert versions.active_versions(s) == {}
    [outcome] = run(sessions)
    assert outcome.proposal.value == dry.proposal.value and outcome.version_id is not None
    with sessions() as s:
        v = versions.active_versions(s)["sexual"]
        assert v.id == outcome.version_id and v.strategy == "recall_target"
        assert v.value == outcome.proposal.value and v.scale == "probability"
        assert v.cutoffs == ladder_from_base(outcome.proposal.value, "probability")
        assert v.reason == outcome.proposal.reason and v.created_by == "test"
        assert v.stats["evidence"]["n"] == 400 and v.stats["previous_value"] == 0.30
        assert v.stats["adjuster"] == "recall_target" and v.stats["previous_source"] == "preset"
        assert v.stats["at_current"]["recall_estimate"] < 0.95
        log = s.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "thresholds.adjust"))
        assert [e.target_id for e in log] == [str(v.id)]


def test_thin_or_old_evidence_writes_nothing(engine):
    sessions = make_sessionmaker(engine)
    seed_evidence(sessions, caught=10, audits=misses_below(20, 5), at=utcnow())
    [thin] = run(sessions)
    assert not thin.changed and thin.proposal.reason == "thin evidence: 15 violations < 30"
    old = utcnow() - dt.timedelta(days=3)
    seed_evidence(sessions, caught=100, audits=misses_below(), at=old)
    [still] = run(sessions, horizon_s=86400)  # the old evidence is outside the window
    assert not still.changed and still.evidence["n"] == 30
    with sessions() as s:
        assert versions.active_versions(s) == {}


def test_seed_adjuster_raises_on_false_positives(engine):
    sessions = make_sessionmaker(engine)
    # 60 reviewed queue items above the threshold, none a violation: FP rate 100 % > 10 %
    seed_evidence(sessions, caught=0, audits=[(0.5, False)] * 60, at=utcnow())
    [outcome] = run(sessions, adjuster="seed")
    assert outcome.proposal.strategy == "seed" and outcome.proposal.value == pytest.approx(0.31)
    with sessions() as s:
        assert versions.active_versions(s)["sexual"].value == pytest.approx(0.31)


def test_unknown_category_or_adjuster_is_an_error(engine):
    with make_sessionmaker(engine).begin() as s, pytest.raises(KeyError, match="weapons"):
        adjust_thresholds(s, preset_thresholds(SCALES), adjuster="seed", now=utcnow(),
                          horizon_s=10, categories=["weapons"])  # fmt: skip
    with pytest.raises(ValueError, match="unknown adjuster"):
        propose("magic", 0.3, "probability", Evidence.from_arrays([], [], []), now=0.0)  # type: ignore[arg-type]


def test_cli_adjust_dry_run_then_write(db_url):
    engine = make_engine(db_url)
    try:
        seed_evidence(make_sessionmaker(engine), caught=100, audits=misses_below(), at=utcnow())
    finally:
        engine.dispose()
    u = ("--url", db_url, "--scale", "probability")
    dry = json.loads(ok("thresholds", "adjust", "--dry-run", "--json", *u))
    assert dry["profile"] == "every category on scale probability (given)"
    assert [(o["category"], o["changed"], o["version_id"]) for o in dry["outcomes"]] == [
        ("sexual", True, None)
    ]
    out = ok("thresholds", "adjust", "--category", "sexual", "--actor", "ana", *u)
    assert "sexual (recall_target): 0.3000 →" in out and "(version 1)" in out
    with db_session(db_url) as s:
        assert versions.active_versions(s)["sexual"].created_by == "ana"
    fails("thresholds", "adjust", "--adjuster", "magic", *u, match="--adjuster must be one of")
    fails("thresholds", "adjust", "--category", "weapons", "--url", db_url, "--scale",
          "probability", match="weapons")  # fmt: skip


def test_thresholds_in_force_never_loads_a_model(db_url, settings_factory, monkeypatch):
    """The hourly beat task runs in the ops worker, which holds no model: loading GME there
    every hour would cost minutes and gigabytes. The scales come from ``scorer_profile``."""
    import moderation.scoring.scorers as scorers
    from moderation.thresholds.resolver import thresholds_in_force

    def refuse(*_a, **_k):
        raise AssertionError("build_scorer called")

    monkeypatch.setattr(scorers, "build_scorer", refuse)
    settings = settings_factory(backend="fake", database_url=db_url)
    with db_session(db_url) as s:
        th = thresholds_in_force(s, settings)
    assert th["sexual"].scale == "fake_cosine" and set(th) == set(load_catalog().category_names)


# --- thin evidence, pins, the scales of what is scored ------------------------------------


def test_cli_thin_evidence_writes_nothing_even_outside_the_bounds(db_url):
    """The issue's reproduction: a hand-set 0.02 (below the probability bounds) and then
    ``adjust`` with no reviews must not clamp it to 0.05; nor with too few reviews."""
    url = ("--url", db_url)
    ok("thresholds", "set", "sexual", "--base", "0.02", "--scale", "probability", "--reason",
       "x", *url)  # fmt: skip
    u = (*url, "--scale", "probability")
    assert "pinned since version 1" in ok("thresholds", "adjust", "--category", "sexual", *u)
    ok("thresholds", "unpin", "sexual", *url)  # version 2, same cut-offs, unpinned
    out = ok("thresholds", "adjust", "--category", "sexual", *u)
    assert (
        "sexual (recall_target): unchanged at 0.0200 — thin evidence: 0 violations < 30 "
        "(current 0.02 outside [0.05, 0.95])"
    ) in out
    engine = make_engine(db_url)
    try:
        seed_evidence(make_sessionmaker(engine), caught=10, audits=misses_below(20, 5),
                      at=utcnow())  # fmt: skip
    finally:
        engine.dispose()
    [thin] = json.loads(ok("thresholds", "adjust", "--json", *u))["outcomes"]
    assert (thin["changed"], thin["version_id"]) == (False, None)
    assert thin["reason"].startswith("thin evidence: 15 violations < 30")
    seed_out = ok("thresholds", "adjust", "--adjuster", "seed", *u)
    assert "thin evidence: 30 feedback items < 50" in seed_out
    with db_session(db_url) as s:
        assert [v.id for v in versions.history(s, "sexual")] == [2, 1]
        assert versions.active_versions(s)["sexual"].value == 0.02


def test_beat_run_on_thin_evidence_writes_nothing(db_url, settings_factory):
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions.begin() as s:
            versions.append_version(s, category="sexual", policy="content_safety",
                                    cutoffs=ladder_from_base(0.02, "probability"),
                                    scale="probability", strategy="recall_target",
                                    reason="old", created_by="adjuster")  # fmt: skip
        seed_evidence(sessions, caught=10, audits=misses_below(20, 5), at=utcnow())
        settings = settings_factory(database_url=db_url)
        run = run_configured(settings, sessions, now=utcnow(), scorer=ColourScorer())
        [outcome] = run.outcomes
        assert not outcome.changed and outcome.proposal.reason.startswith("thin evidence")
        with sessions() as s:
            assert len(versions.history(s, "sexual")) == 1
    finally:
        engine.dispose()


def _pin(sessions, base=0.30):
    with sessions.begin() as s:
        return versions.append_version(s, category="sexual", policy="content_safety",
                                       cutoffs=ladder_from_base(base, "probability"),
                                       scale="probability", strategy="manual", reason="by hand",
                                       created_by="ana", pinned=True)  # fmt: skip


def _adjust(sessions, unpin_min_audited):
    with sessions.begin() as s:
        return adjust_thresholds(s, resolve_thresholds(s, SCALES), adjuster="recall_target",
                                 now=utcnow(), horizon_s=86400, created_by="test",
                                 unpin_min_audited=unpin_min_audited)  # fmt: skip


def test_a_pinned_version_holds_until_enough_audits_arrive_after_it(engine):
    sessions = make_sessionmaker(engine)
    # evidence that would lower the threshold, all routed before the pin
    seed_evidence(sessions, caught=100, audits=misses_below(), at=utcnow() - dt.timedelta(hours=1))
    pin = _pin(sessions)
    [held] = _adjust(sessions, unpin_min_audited=250)
    assert not held.changed and held.version_id is None
    assert held.proposal.reason == (
        f"pinned since version {pin.id} (0 audits since < 250 to move it, or "
        "`moderation thresholds unpin sexual`)"
    )
    [forever] = _adjust(sessions, unpin_min_audited=None)
    assert forever.proposal.reason == (
        f"pinned since version {pin.id} (until `moderation thresholds unpin sexual`)"
    )
    # 300 audits routed after the pin reach the minimum: the adjuster moves it, unpinned
    seed_evidence(sessions, caught=100, audits=misses_below(), at=utcnow())
    [moved] = _adjust(sessions, unpin_min_audited=250)
    assert moved.changed and moved.proposal.value < 0.30 and moved.version_id is not None
    assert f"(pin of version {pin.id} lifted: 300 audits since ≥ 250)" in moved.proposal.reason
    with sessions() as s:
        active = versions.active_versions(s)["sexual"]
        assert active.id == moved.version_id and not active.pinned
        assert active.stats["unpinned"] == {"version_id": pin.id, "audited_since_pin": 300}
    [again] = _adjust(sessions, unpin_min_audited=250)  # no pin any more: nothing in the way
    assert "pinned" not in again.proposal.reason and "pin of" not in again.proposal.reason


def test_cli_adjust_takes_the_scales_of_the_registered_profiles(db_url):
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        seed_evidence(sessions, caught=100, audits=misses_below(), at=utcnow())
        u = ("--url", db_url)
        fallback = json.loads(ok("thresholds", "adjust", "--dry-run", "--json", *u))
        assert fallback["profile_source"] == "settings"
        assert "no scorer profile registered" in ok("thresholds", "adjust", "--dry-run", *u)
        register_scorer(sessions, ColourScorer(), worker="gpu0@a", backend="colour")
        run = json.loads(ok("thresholds", "adjust", "--dry-run", "--json", *u))
        assert run["profile_source"] == "registered" and "colour test-colour-v1" in run["profile"]
        [outcome] = run["outcomes"]
        assert (outcome["category"], outcome["scale"], outcome["changed"]) == (
            "sexual",
            "probability",
            True,
        )
        # a second live profile with sexual on another scale: the CLI names and skips it
        with sessions.begin() as s:
            register_profile(s, worker="gpu1@b", model_id="gme", backend="gme",
                             catalog_version="c", now=utcnow(), categories={
                                 "sexual": {"scale": "gme_cosine", "severity": 3, "base": None}
                             })  # fmt: skip
        out = ok("thresholds", "adjust", "--category", "sexual", *u)
        assert "sexual: skipped — live scorers disagree on its scale: gme_cosine (gpu1@b); " in out
        with sessions() as s:
            assert versions.active_versions(s) == {}
    finally:
        engine.dispose()


def test_double_reviews_give_a_noise_corrected_recall_in_the_adjusters_evidence(engine):
    """A second reviewer re-labels 40 queue items and flips 2: the version's stats (what the
    dashboard's "Adjuster evidence" and the CLI show) carry the reviewer error and the recall
    in force corrected for it."""
    sessions = make_sessionmaker(engine)
    at = utcnow()
    seed_evidence(sessions, caught=100, audits=misses_below(), at=at)
    with sessions.begin() as s:
        queue = s.scalars(
            select(ReviewItem.job_id).where(ReviewItem.kind == ReviewItemKind.QUEUE)
            .order_by(ReviewItem.job_id).limit(40)
        ).all()  # fmt: skip
        for i, job_id in enumerate(queue):
            s.add(Review(job_id=job_id, reviewer="sam", category="sexual",
                         label="not_violation" if i < 2 else "violation",
                         created_at=at + dt.timedelta(minutes=2)))  # fmt: skip
    [outcome] = run(sessions)
    noise = outcome.proposal.evidence["label_noise"]
    e = (1 - math.sqrt(1 - 2 * 0.05)) / 2  # d = 2/40
    assert (noise["pairs"], noise["disagreements"]) == (40, 2)
    assert noise["reviewer_error"] == round(e, 6) == 0.025658
    assert noise["threshold"] == outcome.proposal.value
    # by hand at the proposed threshold (a tie counts as a violation, so labels are unchanged)
    ev = category_evidence(make_sessionmaker(engine)(), "sexual")
    assert noise["recall_corrected"] == round(
        corrected_recall(ev.score, ev.is_violation, ev.inclusion_probability,
                         outcome.proposal.value, e), 6)  # fmt: skip
    lo, hi = noise["recall_corrected_interval"]
    assert lo <= noise["recall_corrected"] <= hi
    with sessions() as s:
        stats = versions.active_versions(s)["sexual"].stats
        assert stats["label_noise"] == noise


def test_cli_adjust_prints_the_noise_corrected_recall(db_url):
    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        seed_evidence(sessions, caught=100, audits=misses_below(), at=utcnow())
        with sessions.begin() as s:
            for job_id in s.scalars(select(ReviewItem.job_id).limit(20)).all():
                s.add(Review(job_id=job_id, reviewer="sam", category="sexual",
                             label="violation", created_at=utcnow()))  # fmt: skip
    finally:
        engine.dispose()
    out = ok("thresholds", "adjust", "--dry-run", "--url", db_url, "--scale", "probability")
    assert "label noise: reviewer error 0.0000" in out and "from 20 double reviews" in out
