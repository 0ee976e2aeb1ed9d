"""Extending the system: a new backend and a new tier each touch a known, small set of files
(docs/thresholds.md, "Extending").

- A new backend: its module (the embedder or classifier, ``moderation/embedders/<name>.py``),
  one line in ``moderation/embedders/registry.py`` and its ``ScaleSpec`` in
  ``moderation/thresholds/scales.py`` — here all three are done from this test module alone,
  and the backend then scores through ``build_scorer`` / ``thresholds_for`` / ``decide`` and
  ``moderation score`` like the built-in ones.
- A new tier: ``RiskTier`` and its ``TIERS`` row (``moderation/domain.py``), its cut-off in each
  built-in scale (``moderation/thresholds/scales.py``), a migration of the ``risk_tier`` CHECK
  constraints — every other per-tier table derives from those.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from moderation.cli import app as cli_app
from moderation.config import Settings, get_settings
from moderation.domain import TIERS, RiskTier
from moderation.embedders import registry
from moderation.embedders.base import EmbedderInfo
from moderation.embedders.fake import FakeEmbedder
from moderation.scoring.scorers import build_scorer, scorer_profile
from moderation.thresholds import scales
from moderation.thresholds.resolver import thresholds_for
from moderation.thresholds.scales import AdjusterSteps, ScaleSpec, UnknownScale, register_scale
from moderation.thresholds.tiers import ACTIONS, LADDER, decide

ROOT = Path(__file__).resolve().parents[2]


class ToyEmbedder(FakeEmbedder):
    """A third-party embedder: the fake's geometry under its own name and model id."""

    def __init__(self, model_path: object = None, *, device: str = "cpu", batch_size: int = 16):
        super().__init__(model_path, device=device, batch_size=batch_size)
        self.info = EmbedderInfo(
            name="toy", model_id="toy-v1", dim=self.info.dim, dtype="float32", device="cpu"
        )


# Its own constants: a cosine of 0.5 is only "medium" here (it is "extreme" on gme_cosine).
TOY_SCALE = ScaleSpec(
    "toy_cosine",
    cutoffs={
        RiskTier.WARNING: 0.30,
        RiskTier.MEDIUM: 0.45,
        RiskTier.HIGH: 0.60,
        RiskTier.EXTREME: 0.80,
    },
    adjuster=AdjusterSteps(
        bounds=(0.2, 0.9), max_step_up=0.02, max_step_down=0.04, resolution=0.005
    ),
    audit_bands=(("near", 0.05, 0.2), ("rest", math.inf, 0.01)),
    description="toy embedder cosine (tests/moderation/test_extending.py)",
)


@pytest.fixture
def toy_backend(monkeypatch: pytest.MonkeyPatch) -> str:
    """The two registrations a new embedding backend needs (its module is this one)."""
    monkeypatch.setitem(registry.EMBEDDERS, "toy", f"{__name__}:ToyEmbedder")
    monkeypatch.setattr(scales, "SCALES", dict(scales.SCALES))  # undone after the test
    register_scale(TOY_SCALE)
    return "toy"


def subject_png(tmp_path: Path) -> Path:
    buffer = io.BytesIO()
    FakeEmbedder.image_matching("gun bicycle cat tree").save(buffer, "PNG")  # weapons ≈ 0.50
    path = tmp_path / "subject.png"
    path.write_bytes(buffer.getvalue())
    return path


def test_a_registered_backend_scores_and_decides_on_its_own_scale(toy_backend, tmp_path):
    settings = Settings(_env_file=None, backend=toy_backend, pattern_cache_dir=tmp_path / "c")  # type: ignore[call-arg]
    scorer = build_scorer(settings)
    assert scorer.model_id == "toy-v1" and set(scorer.scales.values()) == {"toy_cosine"}
    assert scorer_profile(settings).scales == scorer.scales  # no model needed for the profile
    image = Image.open(subject_png(tmp_path)).convert("RGB")
    values = {c: s.score for c, s in scorer.score_images([image])[0].items()}
    decision = decide(values, thresholds_for(None, scorer, None))
    assert 0.45 <= values["weapons"] < 0.6
    assert decision.category_tiers["weapons"] is RiskTier.MEDIUM  # toy_cosine's cut-offs
    assert decision.tier is RiskTier.MEDIUM and decision.action == ACTIONS[RiskTier.MEDIUM]


def test_moderation_score_takes_the_new_backend(toy_backend, tmp_path):
    get_settings.cache_clear()
    result = CliRunner().invoke(
        cli_app,
        ["score", "--json", "--backend", toy_backend, str(subject_png(tmp_path))],
        env={
            "MODERATION_DATABASE_URL": f"sqlite:///{tmp_path / 'none.sqlite3'}",
            "MODERATION_PATTERN_CACHE_DIR": str(tmp_path / "cache"),
        },
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["results"][0]
    assert row["scores"]["weapons"]["scale"] == "toy_cosine"
    assert row["scores"]["weapons"]["tier"] == "medium"


def test_a_backend_without_a_registered_scale_fails_once_at_start_up(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.EMBEDDERS, "toy", f"{__name__}:ToyEmbedder")
    settings = Settings(_env_file=None, backend="toy", pattern_cache_dir=tmp_path / "c")  # type: ignore[call-arg]
    with pytest.raises(UnknownScale, match=r"'toy_cosine'.*known: fake_cosine, gme_cosine"):
        build_scorer(settings)
    with pytest.raises(UnknownScale):
        scorer_profile(settings)
    get_settings.cache_clear()
    result = CliRunner().invoke(
        cli_app,
        ["score", "--backend", "toy", str(subject_png(tmp_path))],
        env={"MODERATION_PATTERN_CACHE_DIR": str(tmp_path / "cache")},
    )
    get_settings.cache_clear()
    assert result.exit_code != 0 and "toy_cosine" in str(result.exception)
    assert "register_scale" in str(result.exception)


def test_an_unknown_backend_lists_every_registered_one(tmp_path):
    get_settings.cache_clear()
    for command in ("score", "scan"):
        result = CliRunner().invoke(cli_app, [command, "--backend", "foo", str(tmp_path)])
        message = str(result.exception)
        assert "unknown backend 'foo'" in message, (command, result.output)
        for name in registry.backend_names():
            assert name in message
    assert {"open_nsfw", "gme", "fake"} <= set(registry.backend_names())
    with pytest.raises(ValueError, match="unknown backend 'foo'; one of fake, gme, open_nsfw"):
        Settings(_env_file=None, backend="foo")  # type: ignore[call-arg]


# --- a new tier -----------------------------------------------------------------------------


def test_every_tier_has_its_row_and_a_cut_off_on_every_built_in_scale():
    assert list(TIERS) == list(RiskTier)  # one row per tier, in ladder order
    assert LADDER == tuple(t for t in RiskTier if t is not RiskTier.CLEAR)
    assert ACTIONS == {t: look.action for t, look in TIERS.items()}
    for tier, look in TIERS.items():
        assert look.action and re.fullmatch(r"#[0-9a-f]{6}", look.colour), tier
        assert re.fullmatch(r"#[0-9a-f]{6}", look.badge) and look.terminal, tier
    for spec in scales.SCALES.values():
        assert set(spec.cutoffs) == set(LADDER), spec.name


def test_the_surfaces_read_their_tier_styles_from_the_one_table():
    from moderation.cli.score import TIER_STYLE
    from moderation.web.pages.overview import TIER_COLORS

    assert TIER_STYLE == {t.value: look.terminal for t, look in TIERS.items()}
    assert TIER_COLORS == {t: look.colour for t, look in TIERS.items()}


def test_no_other_module_keeps_a_per_tier_table():
    """A file naming every non-clear tier holds a per-tier table; only the two homes may."""
    homes = {"moderation/domain.py", "moderation/thresholds/scales.py"}
    tables = set()
    for path in (ROOT / "moderation").rglob("*"):
        if path.suffix not in {".py", ".html", ".css", ".js"}:
            continue
        text = path.read_text(encoding="utf-8")
        named = [
            t
            for t in LADDER
            if re.search(rf"RiskTier\.{t.name}\b|[\"']{t.value}[\"']|tier-{t.value}\b", text)
        ]
        if len(named) == len(LADDER):
            tables.add(path.relative_to(ROOT).as_posix())
    assert tables == homes


def test_a_scale_must_give_every_tier_a_cut_off():
    cutoffs = {t: v for t, v in TOY_SCALE.cutoffs.items() if t is not RiskTier.EXTREME}
    with pytest.raises(ValueError, match="cut-offs needed for exactly"):
        dataclasses.replace(TOY_SCALE, cutoffs=cutoffs)
