"""The reviewer loop end to end on Postgres: jobs scored by the pipeline (audits included),
reviews posted through the API, ``moderation thresholds adjust`` writes the next version, and
the pipeline decides with it."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from moderation.config import Settings
from moderation.db.models import AuditSample, Decision, ReviewItem
from moderation.db.repositories import thresholds as versions
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import RiskTier
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import build_context
from tests.fakes import ColourScorer, png_bytes
from tests.moderation.cli.runner import db_session, ok
from tests.moderation.pipeline.test_batch import submit


def test_reviews_through_the_api_move_the_threshold(api):
    url = api.settings.database_url
    engine = make_engine(url)
    settings = Settings(_env_file=None, audit_fraction=0.3)  # type: ignore[call-arg]
    ctx = build_context(settings, ColourScorer(), make_sessionmaker(engine), worker="e2e")
    try:
        # 60 images over the 0.30 cut-off (queued for review), 40 under it (audit candidates)
        above = [png_bytes((int(255 * (0.36 + i * 0.003)), 0, 0)) for i in range(60)]
        below = [png_bytes((int(255 * (0.05 + i * 0.006)), i, 0)) for i in range(40)]
        ids = submit(ctx, *above, *below)
        run_batch(ctx, ids[:50])
        run_batch(ctx, ids[50:])
        with session_scope(ctx.sessions) as s:
            queued = s.scalar(select(func.count()).select_from(ReviewItem).where(
                ReviewItem.kind == "queue"))  # fmt: skip
            audits = s.scalar(select(func.count()).select_from(AuditSample))
        assert queued == 60 and audits > 0

        # rita works the queue through the API: everything she sees is harmless
        posted = 0
        while True:
            r = api.client.get("/v1/review-queue/next?n=25", headers=api.headers("rita"))
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            if not items:
                break
            for item in items:
                for category in item["review_categories"]:
                    body = {"item_id": item["item_id"], "category": category,
                            "label": "not_violation"}  # fmt: skip
                    r = api.client.post("/v1/reviews", json=body, headers=api.headers("rita"))
                    assert r.status_code == 201, r.text
                    posted += 1
        assert posted >= 60 + audits - 1  # every routed (job, category) got its label
        with session_scope(ctx.sessions) as s:
            assert set(s.scalars(select(ReviewItem.status))) == {"done"}

        # the seed's adjuster sees 60 % false positives in its window: raise by one step
        u = ("--url", url, "--scale", "probability", "--adjuster", "seed")
        dry = json.loads(ok("thresholds", "adjust", "--dry-run", "--json", *u))
        assert {o["category"]: o["changed"] for o in dry["outcomes"]}["sexual"] is True
        with db_session(url) as s:
            assert versions.active_versions(s) == {}
        out = ok("thresholds", "adjust", "--actor", "e2e", *u)
        assert "sexual (seed): 0.3000 → 0.3100 (version 1)" in out
        with db_session(url) as s:
            active = versions.active_versions(s)
            assert set(active) == {"sexual"}  # violence: too little feedback, no version
            v = active["sexual"]
            assert v.value == 0.31 and v.strategy == "seed" and v.created_by == "e2e"
            assert "false-positive rate" in v.reason
            assert v.stats["false_positives"] == 60 and v.stats["evidence"]["positives"] == 0
            assert v.stats["previous_value"] == 0.30

        # the pipeline now decides with version 1: 0.305 is under the new cut-off
        [late] = submit(ctx, png_bytes((78, 0, 0)))  # 78/255 ≈ 0.306
        run_batch(ctx, [late])
        with session_scope(ctx.sessions) as s:
            decision = s.scalars(select(Decision).where(Decision.job_id == late)).one()
            assert decision.tier == RiskTier.WARNING
            assert decision.threshold_versions["sexual"] == v.id
    finally:
        ctx.close()
        engine.dispose()
