"""One threshold spine: ``moderation score``, ``moderation scan``, the worker's batch (as the
Celery task runs it) and the dashboard's matcher page give the same image the same tiers, and
the dashboard's Thresholds page shows the cut-off they used —
under a thresholds file that moves a category's base, and under an active DB version — on
SQLite and PostgreSQL.

The image is chosen so that the preset, the file and the version each give a *different*
weapons tier: a surface that ignored the file or the version would disagree.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from moderation.cli import app as cli_app
from moderation.config import get_settings
from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Decision, Job, Score
from moderation.db.session import session_scope
from moderation.db.types import utcnow
from moderation.domain import RiskTier
from moderation.embedders.fake import FakeEmbedder
from moderation.pipeline.batch import run_batch
from moderation.pipeline.intake import Submission, register_submissions
from moderation.services import thresholds as service
from moderation.thresholds.tiers import decide, preset_thresholds
from moderation.web.app import create_dashboard_app
from tests.dashboard_auth import DashboardClient
from workers.celery_app import make_celery
from workers.lifecycle import build_worker_context

# Under the fake embedder this drawing scores weapons ≈ 0.50 ("a photo of a gun" shares one of
# its four content words) and every other category < 0.12 (clear).
SUBJECT = "gun bicycle cat tree"
FILE = "categories:\n  weapons: {scale: fake_cosine, base: 0.6}\n"  # warning starts ≈ 0.40
VERSION_CUTOFFS = {
    RiskTier.WARNING: 0.1,
    RiskTier.MEDIUM: 0.2,
    RiskTier.HIGH: 0.45,
    RiskTier.EXTREME: 0.9,
}


@pytest.fixture
def setup(tmp_path: Path, db_url: str) -> dict[str, Path | str]:
    images = tmp_path / "images"
    images.mkdir()
    buffer = io.BytesIO()
    FakeEmbedder.image_matching(SUBJECT).save(buffer, "PNG")
    (images / "subject.png").write_bytes(buffer.getvalue())
    (tmp_path / "thresholds.yaml").write_text(FILE, encoding="utf-8")
    return {
        "db": db_url,
        "image": images / "subject.png",
        "file": tmp_path / "thresholds.yaml",
        "cache": tmp_path / "pattern-cache",
    }


def _env(setup: dict) -> dict[str, str]:
    return {
        "COLUMNS": "200",
        "MODERATION_BACKEND": "fake",
        "MODERATION_DATABASE_URL": str(setup["db"]),
        "MODERATION_THRESHOLDS_FILE": str(setup["file"]),
        "MODERATION_PATTERN_CACHE_DIR": str(setup["cache"]),
    }


def _invoke(setup: dict, *args: str, **env: str):  # type: ignore[no-untyped-def]
    get_settings.cache_clear()  # settings come from the env the runner sets
    result = CliRunner().invoke(cli_app, list(args), env={**_env(setup), **env})
    get_settings.cache_clear()
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def via_score(setup: dict) -> tuple[str, str]:
    row = json.loads(_invoke(setup, "score", "--json", str(setup["image"])).stdout)["results"][0]
    return row["decision"]["tier"], row["scores"]["weapons"]["tier"]


def _tiers_of(url: str, job_id: int) -> tuple[str, str]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            overall = s.scalar(select(Decision.tier).where(Decision.job_id == job_id))
            weapons = s.scalar(
                select(Score.tier).where(Score.job_id == job_id, Score.category == "weapons")
            )
    finally:
        engine.dispose()
    return str(overall), str(weapons)


def via_scan(setup: dict) -> tuple[str, str]:
    _invoke(setup, "scan", str(Path(setup["image"]).parent), "--url", str(setup["db"]))
    engine = make_engine(str(setup["db"]))
    try:
        with make_sessionmaker(engine)() as s:
            job_id = s.scalar(select(Job.id).where(Job.source == "scan").order_by(Job.id.desc()))
    finally:
        engine.dispose()
    return _tiers_of(str(setup["db"]), int(job_id))


def via_worker(setup: dict, settings_factory) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    settings = settings_factory(
        backend="fake",
        database_url=str(setup["db"]),
        thresholds_file=setup["file"],
        pattern_cache_dir=setup["cache"],
    )
    ctx = build_worker_context(make_celery(settings), "spine-test")  # a pool process's context
    try:
        with session_scope(ctx.sessions) as s:
            sub = Submission.from_bytes(Path(setup["image"]).read_bytes())
            [job_id] = register_submissions(s, [sub], utcnow())
        outcome = run_batch(ctx, [job_id])
        assert outcome.scored == [job_id]
    finally:
        ctx.close()
        ctx.sessions.kw["bind"].dispose()
    return _tiers_of(str(setup["db"]), job_id)


def _dashboard_request(setup: dict, settings_factory, method: str, path: str, **kw):  # type: ignore[no-untyped-def]
    """One request to a dashboard app configured like the other surfaces (fake backend, file)."""
    settings = settings_factory(
        database_url=str(setup["db"]),
        backend="fake",
        thresholds_file=setup["file"],
        pattern_cache_dir=setup["cache"],
        allowed_hosts=["testserver"],
    )
    engine = make_engine(str(setup["db"]))
    try:
        app = create_dashboard_app(settings, engine=engine, no_auth=True)
        with DashboardClient(app) as client:  # form posts carry the session's CSRF token
            page = (
                client.post(path, **kw) if method == "POST" else client.request(method, path, **kw)
            )
    finally:
        engine.dispose()
    assert page.status_code == 200, page.text
    return page


def via_matcher(setup: dict, settings_factory) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    image = Path(setup["image"]).read_bytes()
    page = _dashboard_request(
        setup, settings_factory, "POST", "/matcher",
        files={"image": ("subject.png", image, "image/png")},
    )  # fmt: skip
    overall = re.search(r'<strong class="tier"[^>]*>(\w+)</strong>', page.text)
    weapons = re.search(r'<tr id="category-weapons" class="tier-(\w+)">', page.text)
    assert overall and weapons, page.text
    return overall.group(1), weapons.group(1)


def in_force_on_dashboard(setup: dict, settings_factory) -> str:  # type: ignore[no-untyped-def]
    """The dashboard's Thresholds page: the weapons line "In force: <base> (<scale>, from …)"."""
    page = _dashboard_request(
        setup, settings_factory, "GET", "/thresholds", params={"category": "weapons"}
    )
    found = re.search(r'<p class="in-force">(.*?)</p>', page.text, re.S)
    assert found, page.text
    return re.sub(r"<[^>]+>|\s+", " ", found.group(1)).strip()


def every_surface(setup: dict, settings_factory) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    # the worker first: scan then reuses its stored scores, but decides afresh
    return {
        "worker": via_worker(setup, settings_factory),
        "scan": via_scan(setup),
        "score": via_score(setup),
        "matcher": via_matcher(setup, settings_factory),
    }


def _preset_tier() -> RiskTier:
    """What the preset alone would say for the subject (no file, no version)."""
    from moderation.config import Settings
    from moderation.scoring.scorers import build_scorer

    scorer = build_scorer(Settings(_env_file=None, backend="fake"))  # type: ignore[call-arg]
    buffer = io.BytesIO()
    FakeEmbedder.image_matching(SUBJECT).save(buffer, "PNG")
    from PIL import Image

    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    values = {c: s.score for c, s in scorer.score_images([image])[0].items()}
    thresholds = preset_thresholds(scorer.scales, scorer.severities, scorer.base_thresholds)
    return decide(values, thresholds).category_tiers["weapons"]


def test_the_subject_gets_a_different_tier_from_preset_file_and_version():
    # the premise of the tests below: each source alone gives its own weapons tier
    assert _preset_tier() is RiskTier.EXTREME  # file → warning, version → high


def test_a_thresholds_file_moves_the_tier_on_every_surface(setup, settings_factory):
    tiers = every_surface(setup, settings_factory)
    assert set(tiers.values()) == {("warning", "warning")}, tiers
    shown = in_force_on_dashboard(setup, settings_factory)
    assert "0.6" in shown and "from the thresholds file" in shown, shown


def test_an_active_db_version_sets_the_tier_on_every_surface(setup, settings_factory):
    engine = make_engine(str(setup["db"]))
    try:
        with make_sessionmaker(engine).begin() as session:
            service.set_version(
                session, "weapons", reason="test", actor="test", policy="content_safety",
                cutoffs=VERSION_CUTOFFS, scale="fake_cosine",
            )  # fmt: skip
    finally:
        engine.dispose()
    # the version wins over the thresholds file (still configured) and the preset
    tiers = every_surface(setup, settings_factory)
    assert set(tiers.values()) == {("high", "high")}, tiers
    shown = in_force_on_dashboard(setup, settings_factory)
    assert "0.2" in shown and "from version #" in shown, shown


def test_score_without_a_database_says_so_in_one_line_and_uses_the_file(setup, tmp_path):
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'none.sqlite3'}"
    result = _invoke(setup, "score", "--json", str(setup["image"]), MODERATION_DATABASE_URL=missing)
    assert json.loads(result.stdout)["results"][0]["scores"]["weapons"]["tier"] == "warning"
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "no database at" in notes[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "nowhere").exists()  # a read never creates a database
