"""The hash-bank check in the real pipeline (SQLite and Postgres): banked copies are decided
without a forward, benign entries skip the model, refresh follows adds and disables."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import pytest
from PIL import Image
from sqlalchemy import Engine, select

from moderation.config import Settings
from moderation.db.models import Decision, Score
from moderation.db.models import Image as ImageRow
from moderation.db.repositories import banks as repo
from moderation.db.repositories.job_views import get_job_view
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import BankKind, RiskTier, ScoreSource
from moderation.hashbank.banks import bank_hash
from moderation.hashbank.hashing import (
    PDQ_MATCH_THRESHOLD,
    compute_crop_hashes,
    compute_pdq,
    hamming,
)
from moderation.pipeline.bank_hook import BankPreScore
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import PipelineContext, build_context
from moderation.pipeline.intake import Submission, register_submissions
from moderation.thresholds.tiers import ACTIONS
from tests.fakes import ColourScorer
from tests.synthetic_images import flat_image, synthetic_photo

PHOTO = synthetic_photo(11, (480, 360))
OTHER = synthetic_photo(12, (480, 360))


def encode(image: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def near_copy(image: Image.Image, quality: int = 60) -> bytes:
    """A re-upload: resized to 60 % and re-encoded as JPEG — different bytes, same picture."""
    small = image.resize((image.width * 3 // 5, image.height * 3 // 5), Image.Resampling.BILINEAR)
    return encode(small, "JPEG", quality=quality)


@pytest.fixture
def scorer() -> ColourScorer:
    return ColourScorer()


@pytest.fixture
def make_ctx(engine: Engine, scorer: ColourScorer) -> Iterator[Callable[..., PipelineContext]]:
    made: list[PipelineContext] = []

    def make(**overrides: object) -> PipelineContext:
        values = {"bank_refresh_s": 0, **overrides}
        settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
        ctx = build_context(settings, scorer, make_sessionmaker(engine), worker="test@host")
        ctx.db_give_up_after_s = 2
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


def submit(ctx: PipelineContext, *payloads: bytes) -> list[int]:
    with session_scope(ctx.sessions) as s:
        return register_submissions(s, [Submission.from_bytes(p) for p in payloads], utcnow())


def bank(ctx: PipelineContext, image: Image.Image, kind: BankKind, category: str | None) -> int:
    with session_scope(ctx.sessions) as s:
        result = bank_hash(s, bank=kind, pdq=compute_pdq(image), added_by="rita", category=category)
    assert result.outcome == "added" and result.entry is not None
    return result.entry.id


def decision(ctx: PipelineContext, job_id: int) -> Decision:
    with session_scope(ctx.sessions) as s:
        row = s.scalars(select(Decision).where(Decision.job_id == job_id)).one()
        s.expunge(row)
        return row


def scores(ctx: PipelineContext, job_id: int) -> list[tuple[str, ScoreSource, RiskTier]]:
    with session_scope(ctx.sessions) as s:
        rows = s.scalars(select(Score).where(Score.job_id == job_id).order_by(Score.category))
        return [(r.category, ScoreSource(r.source), RiskTier(r.tier)) for r in rows]


def test_a_banked_violation_decides_a_resized_recompressed_copy_without_a_forward(make_ctx, scorer):
    ctx = make_ctx(bank_violation_tier="extreme")
    entry = bank(ctx, PHOTO, BankKind.CONFIRMED_VIOLATION, "violence")
    copy, unrelated = submit(ctx, near_copy(PHOTO), encode(OTHER))
    outcome = run_batch(ctx, [copy, unrelated])
    assert scorer.calls == [1]  # only the unrelated photo went through the model
    assert outcome.tiers[copy] is RiskTier.EXTREME
    row = decision(ctx, copy)
    assert (row.matched_bank_entry_id, row.category, row.action) == (
        entry,
        "violence",
        ACTIONS[RiskTier.EXTREME],
    )
    assert 0 < row.match_distance <= PDQ_MATCH_THRESHOLD
    # the job's one score row says where the tier came from (similarity = 1 - d/256)
    assert scores(ctx, copy) == [("violence", ScoreSource.HASH_MATCH, RiskTier.EXTREME)]
    assert decision(ctx, unrelated).matched_bank_entry_id is None
    with session_scope(ctx.sessions) as s:
        view = get_job_view(s, copy)
        match = view.bank_match
        assert match is not None and (match.entry_id, match.bank, match.category) == (
            entry,
            "confirmed_violation",
            "violence",
        )
        assert match.distance == row.match_distance and match.enabled
        hit = s.scalars(select(Score).where(Score.job_id == copy)).one()
        assert hit.score == pytest.approx(1 - row.match_distance / 256)
        assert hit.details["entry_id"] == entry and hit.details["variant"] == "original"


def test_set_tier_and_score_floors_the_model_tier_and_still_scores(make_ctx, scorer):
    ctx = make_ctx(bank_violation_mode="set_tier_and_score", bank_violation_tier="high")
    entry = bank(ctx, PHOTO, BankKind.CONFIRMED_VIOLATION, "violence")
    [job] = submit(ctx, near_copy(PHOTO))
    outcome = run_batch(ctx, [job])
    assert scorer.calls == [1]
    assert outcome.tiers[job].rank >= RiskTier.HIGH.rank
    assert decision(ctx, job).matched_bank_entry_id == entry
    rows = scores(ctx, job)
    assert {source for _, source, _ in rows} == {ScoreSource.CLASSIFIER}
    assert {c: t for c, _, t in rows}["violence"].rank >= RiskTier.HIGH.rank


def test_a_benign_entry_skips_the_model_or_is_only_recorded(make_ctx, scorer):
    ctx = make_ctx()
    entry = bank(ctx, PHOTO, BankKind.BENIGN, None)
    [job] = submit(ctx, near_copy(PHOTO))
    assert run_batch(ctx, [job]).tiers == {job: RiskTier.CLEAR}
    assert scorer.calls == []
    row = decision(ctx, job)
    assert (row.matched_bank_entry_id, row.category) == (entry, None)
    assert scores(ctx, job) == []  # nothing was scored, nothing is pretended

    recording = make_ctx(bank_benign_mode="record")
    [again] = submit(recording, near_copy(PHOTO, quality=50))
    outcome = run_batch(recording, [again])
    assert scorer.calls == [1]  # the model decides; the hit is kept for "why"
    assert decision(recording, again).matched_bank_entry_id == entry
    assert outcome.tiers[again] is not RiskTier.CLEAR  # the colour scorer sees mid-red


def test_a_disabled_entry_stops_matching_after_refresh(make_ctx, scorer):
    ctx = make_ctx()
    entry = bank(ctx, PHOTO, BankKind.CONFIRMED_VIOLATION, "sexual")
    [first] = submit(ctx, near_copy(PHOTO))
    run_batch(ctx, [first])
    assert decision(ctx, first).matched_bank_entry_id == entry and scorer.calls == []
    with session_scope(ctx.sessions) as s:
        repo.set_enabled(s, entry, enabled=False, actor="adam", reason="false positive")
    [second] = submit(ctx, near_copy(PHOTO, quality=70))
    run_batch(ctx, [second])
    assert decision(ctx, second).matched_bank_entry_id is None and scorer.calls == [1]
    assert ctx.hooks.pre_score.last_refresh.enable_changes == 1
    with session_scope(ctx.sessions) as s:  # the earlier job still says why it matched
        assert get_job_view(s, first).bank_match.enabled is False


def test_with_the_watch_a_change_applies_to_the_very_next_batch(make_ctx, scorer):
    """Instant propagation: the per-batch bank-version check reloads on add, disable and
    re-enable without waiting for the 60 s refresh (and loads nothing when nothing moved)."""
    ctx = make_ctx(bank_refresh_s=60)
    hook = ctx.hooks.pre_score
    now = [1000.0]
    hook.clock = lambda: now[0]  # the periodic refresh is never due after the first
    run_batch(ctx, submit(ctx, encode(OTHER)))
    loaded = hook.last_refresh
    run_batch(ctx, submit(ctx, near_copy(OTHER)))
    assert hook.last_refresh is loaded  # nothing changed: no reload
    entry = bank(ctx, PHOTO, BankKind.CONFIRMED_VIOLATION, "violence")
    [first] = submit(ctx, near_copy(PHOTO))
    run_batch(ctx, [first])
    assert decision(ctx, first).matched_bank_entry_id == entry
    with session_scope(ctx.sessions) as s:
        repo.set_enabled(s, entry, enabled=False, actor="adam")
    [second] = submit(ctx, near_copy(PHOTO, quality=70))
    run_batch(ctx, [second])
    assert decision(ctx, second).matched_bank_entry_id is None
    with session_scope(ctx.sessions) as s:
        repo.set_enabled(s, entry, enabled=True, actor="adam")
    [third] = submit(ctx, near_copy(PHOTO, quality=80))
    run_batch(ctx, [third])
    assert decision(ctx, third).matched_bank_entry_id == entry


def test_entries_added_after_start_arrive_by_incremental_refresh_when_due(make_ctx, scorer):
    ctx = make_ctx(bank_refresh_s=60, bank_watch=False)
    hook = ctx.hooks.pre_score
    assert isinstance(hook, BankPreScore)
    now = [1000.0]
    hook.clock = lambda: now[0]
    [before] = submit(ctx, encode(OTHER))
    run_batch(ctx, [before])  # first batch: the (empty) bank is loaded
    entry = bank(ctx, PHOTO, BankKind.CONFIRMED_VIOLATION, "violence")
    [early] = submit(ctx, near_copy(PHOTO))
    run_batch(ctx, [early])
    assert decision(ctx, early).matched_bank_entry_id is None  # not due: no reload per job
    now[0] += 61
    [late] = submit(ctx, near_copy(PHOTO, quality=75))
    run_batch(ctx, [late])
    assert decision(ctx, late).matched_bank_entry_id == entry
    refresh = hook.last_refresh
    assert (refresh.added, refresh.full_reload, refresh.size) == (1, False, 1)


def test_featureless_images_are_hashed_but_never_matched(make_ctx, scorer):
    ctx = make_ctx()
    flat = flat_image((200, 200), colour=90)
    low = compute_pdq(flat)
    assert low.quality < 50
    with session_scope(ctx.sessions) as s:  # e.g. an imported hash list ignoring quality
        repo.add_entry(s, bank=BankKind.CONFIRMED_VIOLATION, pdq_hash=low.hex,
                       pdq_quality=low.quality, added_by="import", category="sexual")  # fmt: skip
    [job] = submit(ctx, encode(flat))
    run_batch(ctx, [job])
    assert scorer.calls == [1] and decision(ctx, job).matched_bank_entry_id is None
    with session_scope(ctx.sessions) as s:
        stored = s.execute(select(ImageRow.pdq_hash, ImageRow.pdq_quality)).one()
    assert stored == (low.hex, low.quality)


def test_every_decoded_image_gets_its_pdq_hash_stored(make_ctx, scorer):
    ctx = make_ctx(bank_violation_mode="off", bank_benign_mode="off")
    assert ctx.hooks.pre_score is None  # banks off: no lookup, but still hashed
    ids = submit(ctx, encode(PHOTO), near_copy(OTHER), b"not an image")
    run_batch(ctx, ids)
    with session_scope(ctx.sessions) as s:
        rows = s.execute(
            select(ImageRow.width, ImageRow.pdq_hash, ImageRow.pdq_quality).order_by(ImageRow.id)
        ).all()
    assert rows[0] == (480, compute_pdq(PHOTO).hex, compute_pdq(PHOTO).quality)
    assert rows[1].pdq_hash is not None and rows[1].pdq_quality >= 50
    assert hamming(rows[1].pdq_hash, compute_pdq(OTHER).hex) <= PDQ_MATCH_THRESHOLD
    assert rows[2] == (None, None, None)  # undecodable: nothing learnt


def test_a_hashing_failure_records_no_hash_and_does_not_fail_the_job(make_ctx, scorer, monkeypatch):
    import moderation.pipeline.decode as decode

    def broken(image, **_):  # type: ignore[no-untyped-def]
        raise RuntimeError("pdq exploded")

    monkeypatch.setattr(decode, "compute_pdq", broken)
    ctx = make_ctx()
    [job] = submit(ctx, encode(PHOTO))
    outcome = run_batch(ctx, [job])
    assert outcome.scored == [job] and scorer.calls == [1]
    with session_scope(ctx.sessions) as s:
        assert s.execute(select(ImageRow.width, ImageRow.pdq_hash)).one() == (480, None)


def test_the_api_shows_why_a_job_matched(api):
    """Submitted through ``POST /v1/jobs``, decided by the pipeline, read back by the API."""
    engine = make_engine(api.settings.database_url)
    try:
        settings = api.settings.model_copy(update={"bank_refresh_s": 0})
        ctx = build_context(settings, ColourScorer(), make_sessionmaker(engine), worker="t@h")
        try:
            entry = bank(ctx, PHOTO, BankKind.CONFIRMED_VIOLATION, "violence")
            r = api.client.post(
                "/v1/jobs",
                files={"file": ("copy.jpg", near_copy(PHOTO), "image/jpeg")},
                headers=api.headers("alice"),
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            run_batch(ctx, [job_id])
        finally:
            ctx.close()
    finally:
        engine.dispose()
    body = api.client.get(f"/v1/jobs/{job_id}", headers=api.headers("alice")).json()
    assert body["tier"] == settings.bank_violation_tier and body["category"] == "violence"
    match = body["bank_match"]
    assert (match["entry_id"], match["bank"], match["category"]) == (
        entry,
        "confirmed_violation",
        "violence",
    )
    assert 0 < match["distance"] <= PDQ_MATCH_THRESHOLD and match["enabled"] is True
    assert [s["source"] for s in body["scores"]] == ["hash_match"]


def test_a_cropped_copy_is_decided_by_the_banks_crop_windows_when_enabled(make_ctx, scorer):
    ctx = make_ctx(bank_crop_grid=3)
    with session_scope(ctx.sessions) as s:
        crops = compute_crop_hashes(PHOTO, 3, keep=ctx_keep(ctx))
        result = bank_hash(s, bank=BankKind.CONFIRMED_VIOLATION, pdq=compute_pdq(PHOTO),
                           added_by="rita", category="violence", crop_hashes=crops)  # fmt: skip
        entry = result.entry.id
    # 4 % off the left and 1 % off the bottom, then resized and re-encoded
    w, h = PHOTO.size
    cropped = PHOTO.crop((round(0.04 * w), 0, w, h - round(0.01 * h)))
    assert hamming(compute_pdq(cropped).hex, compute_pdq(PHOTO).hex) > PDQ_MATCH_THRESHOLD
    [job] = submit(ctx, near_copy(cropped))
    run_batch(ctx, [job])
    assert scorer.calls == [] and decision(ctx, job).matched_bank_entry_id == entry
    with session_scope(ctx.sessions) as s:
        hit = s.scalars(select(Score).where(Score.job_id == job)).one()
        assert hit.details["variant"].startswith("crop")

    plain = make_ctx()  # crop matching off: the same entry's windows are not loaded
    [again] = submit(plain, near_copy(cropped, quality=70))
    run_batch(plain, [again])
    assert decision(plain, again).matched_bank_entry_id is None and scorer.calls == [1]


def ctx_keep(ctx: PipelineContext) -> float:
    hook = ctx.hooks.pre_score
    assert isinstance(hook, BankPreScore)
    return hook.settings.bank_crop_keep


def test_jobs_show_explains_the_match(make_ctx, engine):
    from typer.testing import CliRunner

    from moderation.cli import app

    ctx = make_ctx()
    entry = bank(ctx, PHOTO, BankKind.BENIGN, None)
    [job] = submit(ctx, near_copy(PHOTO))
    run_batch(ctx, [job])
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        app, ["jobs", "show", str(job)], env={"MODERATION_DATABASE_URL": url, "COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["tier"] == "clear" and shown["bank_match"]["entry_id"] == entry
    assert shown["bank_match"]["bank"] == "benign" and shown["bank_match"]["distance"] >= 0


def test_hashing_runs_on_the_decode_threads(make_ctx, monkeypatch):
    import threading

    import moderation.pipeline.decode as decode

    threads: list[str] = []
    real = decode.compute_pdq

    def recording(image, **kw):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(image, **kw)

    monkeypatch.setattr(decode, "compute_pdq", recording)
    ctx = make_ctx()
    first, second = submit(ctx, encode(PHOTO)), submit(ctx, encode(OTHER))
    run_batch(ctx, first, upcoming=second)  # the second batch is hashed during the first
    [ahead] = ctx.decoder.take(second).values()  # waits for the look-ahead to finish
    assert ahead.pdq is not None and ahead.pdq.hex == compute_pdq(OTHER, dihedral=True).hex
    assert len(threads) == 2 and all(name.startswith("decode") for name in threads)


def test_a_mirrored_copy_hashed_while_the_banks_were_empty_still_matches(make_ctx, scorer):
    """The decoder hashes an image's 7 rotations/mirrors only while a bank holds an enabled
    entry (they cost ~2.5× the hash and only bank matching reads them). An image decoded
    before the first entry arrived — here the look-ahead of the next batch — gets its
    variants from the hook, so a mirrored copy matches all the same; the stored hash is the
    same either way."""
    ctx = make_ctx()  # bank_watch on: the entry is loaded for the very next batch
    hook = ctx.hooks.pre_score
    assert isinstance(hook, BankPreScore)
    mirrored = encode(PHOTO.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    first, [second] = submit(ctx, encode(OTHER)), submit(ctx, mirrored)
    run_batch(ctx, first, upcoming=[second])  # the empty bank is loaded; the mirror decodes
    [ahead] = ctx.decoder.take([second]).values()
    assert not hook.wants_variants() and ahead.pdq is not None and ahead.pdq.variants == ()
    ctx.decoder.prefetch([second])  # back in the look-ahead, hashed without variants again
    entry = bank(ctx, PHOTO, BankKind.CONFIRMED_VIOLATION, "violence")
    run_batch(ctx, [second])
    assert decision(ctx, second).matched_bank_entry_id == entry
    assert hook.wants_variants()  # from now on the decode threads hash them
    [third] = submit(ctx, mirrored + b"")  # the same bytes: a new job of the same image
    [prepared] = ctx.decoder.take([third]).values()
    assert prepared.pdq is not None and len(prepared.pdq.variants) == 7
    assert prepared.pdq.hex == ahead.pdq.hex  # the hash itself does not change
    with session_scope(ctx.sessions) as s:
        stored = s.scalars(select(ImageRow.pdq_hash).order_by(ImageRow.id)).all()
    assert stored[-1] == compute_pdq(PHOTO.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).hex


def test_without_flips_or_banks_no_variants_are_hashed(make_ctx):
    for ctx in (
        make_ctx(bank_match_flips=False),
        make_ctx(bank_violation_mode="off", bank_benign_mode="off"),
    ):
        ids = submit(ctx, encode(PHOTO))
        run_batch(ctx, ids)
        [prepared] = ctx.decoder.take(submit(ctx, encode(OTHER))).values()
        assert prepared.pdq is not None and prepared.pdq.variants == ()
