"""Retro-matching on the deployment path (Postgres + Redis + a real worker with beat): 50
copies scored first, then the original banked the way a reviewer banks it (no explicit run):
the workers' sweep re-decides all 50 with ``retro_match``, each callback is sent once, and
running the task again decides nothing twice."""

from __future__ import annotations

import base64
import io
import time

import pytest
from sqlalchemy import func, select

from moderation.db.models import Decision, DecisionHistory
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import BankKind, RiskTier
from moderation.hashbank.banks import bank_hash
from moderation.hashbank.hashing import compute_pdq
from moderation.pipeline.publish import Publisher
from moderation.services import retro
from tests.synthetic_images import synthetic_photo

from .servers import wait_for

pytestmark = pytest.mark.integration


def test_banking_an_original_re_decides_past_copies_and_calls_back_once(
    stack_factory, pg_url, callback_receiver
):
    received = callback_receiver.received
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    try:
        stack = stack_factory(
            pg_url,
            callback_min_tier="high",
            callback_allowlist=["127.0.0.0/8"],
            bank_retro_sweep_s=1,
        )
        stack.start_worker("--cpu", "1", "--ops", "--beat")
        url = callback_receiver.url
        photo = synthetic_photo(61, (320, 240))
        jobs = []
        for i in range(50):
            buf = io.BytesIO()
            photo.resize((320 - i, 240 - i // 2)).save(buf, format="JPEG", quality=60 + i % 30)
            jobs.append({"image_base64": base64.b64encode(buf.getvalue()).decode(),
                         "callback_url": url})  # fmt: skip
        r = stack.client.post("/v1/jobs/batch", json={"jobs": jobs}, headers=stack.headers)
        assert r.status_code == 202, r.text
        ids = [j["id"] for j in r.json()]
        stack.wait_all_terminal(timeout=180)

        def tiers() -> dict[int, tuple[RiskTier, int, str | None]]:
            with session_scope(sessions) as s:
                rows = s.execute(
                    select(Decision.job_id, Decision.tier, Decision.version, Decision.reason)
                )
                return {r[0]: (RiskTier(r[1]), r[2], r[3]) for r in rows if r[0] in ids}

        before = tiers()
        assert all(t.rank < RiskTier.HIGH.rank for t, _, _ in before.values()), before
        time.sleep(1.0)
        baseline = len(received)  # callbacks of the first decisions (none reach high)
        with session_scope(sessions) as s:  # as the review loop banks a confirmed violation
            entry = bank_hash(
                s, bank=BankKind.CONFIRMED_VIOLATION, pdq=compute_pdq(photo),
                added_by="reviewer:rita", category="violence",
            ).entry  # fmt: skip
        assert entry is not None
        wait_for(lambda: all(v == 2 for _, v, _ in tiers().values()), 90, "all 50 re-decided")
        after = tiers()
        assert {t for t, _, _ in after.values()} == {RiskTier.HIGH}
        assert all(
            r.startswith(f"retro_match: bank entry #{entry.id} ") for _, _, r in after.values()
        )
        wait_for(lambda: len(received) >= baseline + 50, 60, "50 callbacks")
        # run the task again (a redelivery) and a fresh run for the same entry
        done = retro.start_run(sessions, stack.settings, [entry.id], trigger="test:rerun")
        publisher = Publisher(stack.settings)
        publisher.client.send_task(
            retro.RETRO_TASK, args=[done.id], queue=stack.settings.ops_queue_name
        )
        wait_for(
            lambda: retro.resume(sessions, stack.settings, done.id).run.status == "done",
            60,
            "the re-run to finish",
        )
        time.sleep(2.0)
        assert tiers() == after
        assert len(received) == baseline + 50
        assert sorted(p["job_id"] for p in received[baseline:]) == sorted(ids)
        assert all(p["tier"] == "high" for p in received[baseline:])
        with session_scope(sessions) as s:
            assert s.scalar(select(func.count()).select_from(DecisionHistory)) == 50
    finally:
        engine.dispose()
