"""Instant propagation with a real worker process (Postgres + Redis): a bank entry added,
disabled or re-enabled while the worker runs applies to copies submitted right after —
well within 1 s, with the periodic refresh set to 10 minutes so it cannot be what helped."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from sqlalchemy import select

from moderation.db.models import Decision
from moderation.db.repositories import banks as repo
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import BankKind
from moderation.hashbank.banks import bank_hash
from moderation.hashbank.hashing import compute_pdq
from tests.synthetic_images import synthetic_photo

pytestmark = pytest.mark.integration


def copy_of(image: Image.Image, quality: int) -> bytes:
    small = image.resize((image.width * 3 // 5, image.height * 3 // 5))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_a_bank_change_reaches_a_running_worker_before_the_next_copy(stack_factory, pg_url):
    stack = stack_factory(pg_url, bank_refresh_s=600)
    stack.start_worker()
    photo = synthetic_photo(51, (480, 360))
    warmup = stack.submit([copy_of(synthetic_photo(52, (480, 360)), 80)])
    stack.wait_all_terminal(timeout=120)  # the worker has loaded the (empty) bank
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)

    def matched(job_id: int) -> int | None:
        with session_scope(sessions) as s:
            row = s.scalars(select(Decision).where(Decision.job_id == job_id)).one()
            return row.matched_bank_entry_id

    try:
        with session_scope(sessions) as s:
            entry = bank_hash(
                s, bank=BankKind.CONFIRMED_VIOLATION, pdq=compute_pdq(photo),
                added_by="rita", category="violence",
            ).entry  # fmt: skip
        banked_at = time.monotonic()
        [first] = stack.submit([copy_of(photo, 60)])  # submitted within 1 s of the add
        submitted_after = time.monotonic() - banked_at
        stack.wait_all_terminal(timeout=60)
        assert entry is not None and matched(first) == entry.id
        print(f"copy submitted {submitted_after * 1000:.0f} ms after bank add: matched")
        assert submitted_after < 1.0

        with session_scope(sessions) as s:
            repo.set_enabled(s, entry.id, enabled=False, actor="adam")
        [second] = stack.submit([copy_of(photo, 70)])
        stack.wait_all_terminal(timeout=60)
        assert matched(second) is None

        with session_scope(sessions) as s:
            repo.set_enabled(s, entry.id, enabled=True, actor="adam")
        [third] = stack.submit([copy_of(photo, 75)])
        stack.wait_all_terminal(timeout=60)
        assert matched(third) == entry.id
        assert matched(warmup[0]) is None
    finally:
        engine.dispose()
