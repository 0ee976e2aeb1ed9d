"""Threshold versions on both backends: append-only, newest active, scale-checked resolution."""

from __future__ import annotations

from moderation.db import make_sessionmaker
from moderation.db.repositories import thresholds as repo
from moderation.domain import RiskTier
from moderation.thresholds.resolver import resolve_thresholds
from moderation.thresholds.scales import SCALES

CONTENT_SAFETY_CUTOFFS = {name: spec.cutoffs for name, spec in SCALES.items()}


GME = CONTENT_SAFETY_CUTOFFS["gme_cosine"]


def _shifted(delta: float) -> dict[RiskTier, float]:
    return {tier: value + delta for tier, value in GME.items()}


def _append(session, category, delta, scale="gme_cosine"):
    return repo.append_version(
        session, category=category, policy="content_safety", cutoffs=_shifted(delta),
        scale=scale, strategy="manual", reason="test", created_by="tester",
    )  # fmt: skip


def test_newest_version_is_active_and_history_is_kept(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        first = _append(s, "weapons", 0.0)
        second = _append(s, "weapons", 0.02)
        _append(s, "gore", -0.01)
    with Session() as s:
        active = repo.active_versions(s)
        assert active["weapons"].id == second.id
        assert active["weapons"].value == GME[RiskTier.MEDIUM] + 0.02
        assert [v.id for v in repo.history(s, "weapons")] == [second.id, first.id]
        assert set(repo.active_versions(s, ["gore"])) == {"gore"}


def test_resolution_uses_versions_on_the_same_scale_only(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        v = _append(s, "weapons", 0.05)
        _append(s, "sexual", 0.05, scale="gme_cosine")  # wrong scale for a classifier
    with Session() as s:
        th = resolve_thresholds(
            s, {"weapons": "gme_cosine", "sexual": "probability", "drugs": "gme_cosine"},
            {"weapons": 3},
        )  # fmt: skip
    assert th["weapons"].version_id == v.id and th["weapons"].severity == 3
    assert th["weapons"].base == GME[RiskTier.MEDIUM] + 0.05
    assert th["sexual"].version_id is None and th["sexual"].scale == "probability"
    assert th["drugs"].version_id is None and th["drugs"].base == 0.18


def test_precedence_is_db_version_then_file_then_preset(engine, tmp_path):
    path = tmp_path / "thresholds.yaml"
    path.write_text(
        "categories:\n"
        "  weapons: {scale: gme_cosine, base: 0.21}\n"
        "  gore: {scale: gme_cosine, base: 0.19}\n"
        "  sexual: {scale: gme_cosine, base: 0.19}\n"  # wrong scale for the classifier: ignored
    )
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        v = _append(s, "weapons", 0.05)
    scales = {"weapons": "gme_cosine", "gore": "gme_cosine", "sexual": "probability",
              "drugs": "gme_cosine"}  # fmt: skip
    with Session() as s:
        th = resolve_thresholds(s, scales, {"gore": 4}, thresholds_file=path)
    assert (th["weapons"].source, th["weapons"].version_id) == ("version", v.id)
    assert (th["gore"].source, th["gore"].base, th["gore"].severity) == ("file", 0.19, 4)
    assert (th["sexual"].source, th["sexual"].scale) == ("preset", "probability")
    assert (th["drugs"].source, th["drugs"].base) == ("preset", 0.18)


def test_catalog_bases_move_the_preset_but_never_a_stored_version(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        v = _append(s, "weapons", 0.05)
    with Session() as s:
        th = resolve_thresholds(
            s, {"weapons": "gme_cosine", "drugs": "gme_cosine"}, None,
            {"weapons": 0.3, "drugs": 0.25},
        )  # fmt: skip
    assert th["weapons"].version_id == v.id  # a calibrated version outranks the catalog
    assert th["weapons"].base == GME[RiskTier.MEDIUM] + 0.05
    assert th["drugs"].version_id is None and th["drugs"].base == 0.25
