"""Action rules in the real pipeline (SQLite and Postgres): each decision stores the action of
the rules in force (packaged, then an admin-set version), the job view and the callback payload
carry it, and a bank-set tier is judged with source ``bank``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from moderation.actions.resolver import packaged_rules
from moderation.actions.rules import parse_rules
from moderation.config import Settings
from moderation.db.models import Decision
from moderation.db.repositories.job_views import get_job_view
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import RiskTier
from moderation.pipeline.batch import enforcement_of, run_batch
from moderation.pipeline.context import PipelineContext, build_context
from moderation.pipeline.hooks import PreScore
from moderation.pipeline.intake import Submission, register_submissions
from moderation.services import actions as service
from moderation.thresholds.tiers import decide, preset_thresholds
from tests.fakes import ColourScorer, png_bytes
from workers.ops import callback_payload

RED = png_bytes((255, 0, 0))  # sexual 1.0 → extreme
GREEN = png_bytes((0, 255, 0))  # violence 1.0 → extreme
BLACK = png_bytes((0, 0, 0))  # clear


@pytest.fixture
def ctx(engine: Engine) -> Iterator[PipelineContext]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    context = build_context(settings, ColourScorer(), make_sessionmaker(engine), worker="t@h")
    yield context
    context.close()


def submit(ctx: PipelineContext, *payloads: bytes) -> list[int]:
    subs = [Submission.from_bytes(p, callback_url="https://example.org/hook") for p in payloads]
    with session_scope(ctx.sessions) as s:
        return register_submissions(s, subs, utcnow())


def stored(ctx: PipelineContext, job_id: int) -> tuple[str | None, dict | None]:
    with session_scope(ctx.sessions) as s:
        row = s.scalars(select(Decision).where(Decision.job_id == job_id)).one()
        return row.enforcement, row.enforcement_detail


def test_packaged_rules_decide_each_job_and_the_view_and_callback_carry_it(ctx):
    red, black = submit(ctx, RED, BLACK)
    run_batch(ctx, [red, black])
    action, detail = stored(ctx, red)
    assert action == "block"  # extreme, any category → block (escalated)
    assert detail["escalate"] is True and detail["rules_version"] is None
    assert detail["categories"]["sexual"] == {
        "action": "block",
        "escalate": True,
        "source": "model",
    }
    assert detail["categories"]["violence"]["action"] == "allow"
    assert stored(ctx, black) == (
        "allow",
        {
            "action": "allow",
            "escalate": False,
            "rules_version": None,
            "categories": {
                "sexual": {"action": "allow", "escalate": False, "source": "model"},
                "violence": {"action": "allow", "escalate": False, "source": "model"},
            },
        },
    )
    with session_scope(ctx.sessions) as s:
        view = get_job_view(s, red)
    payload = callback_payload(view)
    assert payload["enforcement"]["action"] == "block"
    assert payload["enforcement"]["categories"]["sexual"]["source"] == "model"
    assert payload["action"] == "review_now"  # the review routing is unchanged


def test_an_admin_set_version_decides_later_jobs_with_a_custom_action(ctx):
    rules = {
        "order": ["allow", "blur", "age_restrict", "hold", "quarantine", "block"],
        "rules": [
            {"category": "sexual", "tier": "extreme", "action": "quarantine", "escalate": True},
            {"category": "*", "tier": "extreme", "action": "blur"},
        ],
    }
    with session_scope(ctx.sessions) as s:
        version = service.set_rules(s, rules, reason="test", actor="t").version.id
    red, green = submit(ctx, RED, GREEN)
    run_batch(ctx, [red, green])
    action, detail = stored(ctx, red)
    assert (action, detail["rules_version"], detail["escalate"]) == ("quarantine", version, True)
    assert stored(ctx, green)[0] == "blur"  # violence extreme: the "*" rule
    with session_scope(ctx.sessions) as s:
        view = get_job_view(s, red)
    assert callback_payload(view)["enforcement"]["action"] == "quarantine"


def test_a_bank_hit_is_judged_as_source_bank():
    thresholds = preset_thresholds({"sexual": "probability", "violence": "probability"})
    decision = decide({"sexual": 0.0, "violence": 0.0}, thresholds)
    floored = decision.__class__(
        **{**vars(decision), "tier": RiskTier.HIGH, "category": "violence",
           "category_tiers": {"sexual": RiskTier.CLEAR, "violence": RiskTier.HIGH}}
    )  # fmt: skip
    hit = PreScore(tier_floor=RiskTier.HIGH, category="violence", bank_entry_id=1)
    enforced = enforcement_of(floored, hit, packaged_rules(), 7)
    assert (enforced.action, enforced.rules_version) == ("block", 7)  # bank rule, not "hold"
    assert enforced.categories["violence"].source == "bank"
    model_only = enforcement_of(floored, None, packaged_rules(), None)
    assert model_only.action == "hold" and model_only.categories["violence"].source == "model"
    custom = parse_rules({"rules": [{"category": "*", "tier": "high", "action": "allow"}]})
    assert enforcement_of(floored, hit, custom, None).action == "allow"  # "any" covers bank


def test_an_escalating_rule_queues_a_job_its_tier_would_not(ctx):
    from moderation.db.models import ReviewItem

    rules = {
        "rules": [{"category": "sexual", "tier": "warning", "action": "blur", "escalate": True}]
    }
    with session_scope(ctx.sessions) as s:
        service.set_rules(s, rules, reason="watch sexual warnings", actor="t")
    pink = png_bytes((int(255 * 0.2), 0, 0))  # sexual 0.2: warning on the probability scale
    warned, clear = submit(ctx, pink, BLACK)
    outcome = run_batch(ctx, [warned, clear])
    assert outcome.tiers == {warned: RiskTier.WARNING, clear: RiskTier.CLEAR}
    assert stored(ctx, warned)[0] == "blur"
    with session_scope(ctx.sessions) as s:
        items = {(i.job_id, i.kind, i.category, i.tier) for i in s.scalars(select(ReviewItem))}
    assert (warned, "queue", "sexual", RiskTier.WARNING) in items
    assert not any(job == clear and kind == "queue" for job, kind, *_ in items)
