"""Every frame counts (issue 17): animated GIF/WebP/APNG are decoded frame by frame up to
``max_frames``, each frame is hashed and scored, the image scores the max over frames and the
decision names the frame; bank matching uses any frame. On SQLite and PostgreSQL."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from moderation.db.models import Decision, Score
from moderation.db.repositories.job_views import get_job_view
from moderation.db.session import session_scope
from moderation.domain import BankKind, RiskTier
from moderation.images import ImageRejected, decode_image, frame_sample
from moderation.pipeline.batch import run_batch
from tests.moderation.pipeline import test_bank_hook as bank_tests
from tests.synthetic_images import synthetic_photo

# the bank-hook tests' pipeline fixtures and helpers (real context, ColourScorer)
make_ctx, scorer = bank_tests.make_ctx, bank_tests.scorer
bank, submit = bank_tests.bank, bank_tests.submit

VIOLENT = Image.new("RGB", (96, 72), (10, 240, 10))  # ColourScorer: violence = mean green


def benign(n: int) -> list[Image.Image]:
    """``n`` distinct dark frames (an encoder merges identical consecutive frames)."""
    return [Image.new("RGB", (96, 72), (10 + 3 * i, 10, 10)) for i in range(n)]


def around(frame: Image.Image, covers: list[Image.Image]) -> list[Image.Image]:
    """``frame`` as the 5th of 8: four ``covers`` before it, three after."""
    return [*covers[:4], frame, *covers[4:7]]


def animation(frames: list[Image.Image], fmt: str = "GIF") -> bytes:
    buf = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(
        buf, format=fmt, save_all=True, append_images=frames[1:], duration=80, loop=0, **extra
    )
    return buf.getvalue()


def still(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_frame_sample_is_even_and_keeps_first_and_last():
    assert frame_sample(5, 32) == [0, 1, 2, 3, 4]
    assert frame_sample(100, 4) == [0, 33, 66, 99]
    assert frame_sample(100, 1) == [0]
    assert len(frame_sample(10_000, 32)) == 32


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_every_format_decodes_the_sampled_frames(fmt):
    frames = [Image.new("RGB", (40, 30), (i * 25, 0, 0)) for i in range(10)]
    decoded = decode_image(animation(frames, fmt), max_frames=4)
    assert decoded.frame_count == 10
    assert decoded.frame_numbers == (3, 6, 9)
    reds = [pixels.getpixel((5, 5))[0] for _, pixels in decoded.all_frames()]
    assert reds == [0, 75, 150, 225]
    assert decode_image(animation(frames, fmt), max_frames=1).frames == ()


def test_a_frame_bomb_is_refused_with_a_clear_reason():
    frames = [Image.new("RGB", (100, 100), (i % 250, 0, 0)) for i in range(600)]
    with pytest.raises(ImageRejected) as caught:
        decode_image(animation(frames), max_pixels=5_000_000)
    assert caught.value.code == "too_many_frames"
    assert "600 frames" in caught.value.message


def test_a_gif_whose_fifth_frame_violates_is_flagged_naming_frame_five(make_ctx):
    ctx = make_ctx()
    frames = around(VIOLENT, benign(7))
    gif, first_only = submit(ctx, animation(frames), still(frames[0]))
    outcome = run_batch(ctx, [gif, first_only])
    assert outcome.tiers[first_only] is RiskTier.CLEAR
    assert outcome.tiers[gif].rank > RiskTier.CLEAR.rank
    with session_scope(ctx.sessions) as s:
        row = s.scalars(select(Decision).where(Decision.job_id == gif)).one()
        assert (row.category, row.frame) == ("violence", 4)  # the 5th frame, 0-based
        score = s.scalars(select(Score).where(Score.job_id == gif, Score.category == "violence"))
        assert score.one().details["frame"] == 4


def test_with_one_frame_configured_the_gif_is_judged_by_its_first_frame(make_ctx):
    ctx = make_ctx(max_frames=1)
    (gif,) = submit(ctx, animation(around(VIOLENT, benign(7))))
    assert run_batch(ctx, [gif]).tiers[gif] is RiskTier.CLEAR


def test_a_gif_whose_fifth_frame_is_banked_matches_on_that_frame(make_ctx, scorer):
    ctx = make_ctx(bank_violation_tier="extreme")
    banked = synthetic_photo(21, (240, 180))
    covers = [synthetic_photo(30 + i, (240, 180)) for i in range(7)]
    entry = bank(ctx, banked, BankKind.CONFIRMED_VIOLATION, "violence")
    gif, first_only = submit(ctx, animation(around(banked, covers)), still(covers[0]))
    outcome = run_batch(ctx, [gif, first_only])
    assert outcome.tiers[gif] is RiskTier.EXTREME
    assert outcome.tiers[first_only] is not RiskTier.EXTREME
    with session_scope(ctx.sessions) as s:
        row = s.scalars(select(Decision).where(Decision.job_id == gif)).one()
        assert (row.matched_bank_entry_id, row.frame) == (entry, 4)
        cover_row = s.scalars(select(Decision).where(Decision.job_id == first_only)).one()
        assert cover_row.matched_bank_entry_id is None
        view = get_job_view(s, gif)
        assert (view.frame, view.bank_match.entry_id) == (4, entry)


def _picture_of(vector) -> Image.Image:  # type: ignore[no-untyped-def]
    """An image the fake embedder maps onto ``vector`` (its 16 × 16 RGB box-average grid)."""
    import numpy as np

    grid = np.asarray(vector, np.float32).reshape(16, 16, 3)
    pixels = np.clip(0.5 + 0.5 * grid / np.abs(grid).max(), 0, 1) * 255
    return Image.fromarray(pixels.astype(np.uint8)).resize((96, 96), Image.Resampling.NEAREST)


def test_with_the_fake_backend_frame_five_matching_a_violation_phrasing_decides(engine):
    """The fake embedding backend: frame 5 pictures a violation phrasing, the rest are grey."""
    from moderation.config import Settings
    from moderation.db.session import make_sessionmaker
    from moderation.pipeline.context import build_context
    from moderation.scoring.scorers import build_scorer

    settings = Settings(_env_file=None, backend="fake", bank_refresh_s=0)  # type: ignore[call-arg]
    scorer = build_scorer(settings)
    table = scorer.table
    category = table.categories[0]
    phrasing = table.phrasings[table.starts[0]]
    violating = _picture_of(scorer.embedder.embed_texts([phrasing])[0])
    greys = [Image.new("RGB", (96, 96), (120 + i, 120, 120)) for i in range(7)]
    ctx = build_context(settings, scorer, make_sessionmaker(engine), worker="test@host")
    try:
        gif, first = submit(ctx, animation(around(violating, greys), "WEBP"), still(greys[0]))
        outcome = run_batch(ctx, [gif, first])
        with session_scope(ctx.sessions) as s:
            row = s.scalars(select(Decision).where(Decision.job_id == gif)).one()
            score = s.scalars(
                select(Score).where(Score.job_id == gif, Score.category == category)
            ).one()
        assert outcome.tiers[gif].rank > outcome.tiers[first].rank
        assert (row.category, row.frame) == (category, 4)
        assert (score.details["frame"], score.phrasing) == (4, phrasing)
    finally:
        ctx.close()
