"""One micro-batch: claim → decode → (match) → score in one forward → decide → commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from moderation import metrics
from moderation.actions.resolver import rules_in_force
from moderation.actions.rules import ActionRules, Enforcement, evaluate
from moderation.db.repositories import jobs as jobs_repo
from moderation.db.repositories.images import ImageFacts, record_facts
from moderation.db.repositories.jobs import Claim, ClaimResult, JobFailure
from moderation.db.repositories.results import (
    DecisionRow,
    ScoreRow,
    insert_decisions,
    insert_scores,
    reusable_scores,
)
from moderation.db.retry import in_transaction
from moderation.domain import RiskTier, ScoreSource
from moderation.scoring.base import CategoryScore, ScoreSet
from moderation.scoring.texts import Scenario, make_scenarios
from moderation.thresholds.presets import policy_named
from moderation.thresholds.resolver import thresholds_for
from moderation.thresholds.scenarios import (
    JobContext,
    JobOptions,
    apply_policy,
    context_thresholds,
    wants_tags,
)
from moderation.thresholds.tiers import ACTIONS, CategoryThresholds, Decision, decide

from .context import PipelineContext
from .decode import Prepared
from .hooks import DecidedJob, PreScore

__all__ = ["BatchError", "BatchOutcome", "max_over_frames", "run_batch"]

log = logging.getLogger(__name__)


class BatchError(RuntimeError):
    """Scoring failed for reasons other than the input; the jobs must be delivered again."""


@dataclass
class BatchOutcome:
    scored: list[int] = field(default_factory=list)
    failed: dict[int, JobFailure] = field(default_factory=dict)
    quarantined: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # terminal already (redelivery) or unknown
    tiers: dict[int, RiskTier] = field(default_factory=dict)

    def merge(self, other: BatchOutcome) -> None:
        self.scored += other.scored
        self.failed.update(other.failed)
        self.quarantined += other.quarantined
        self.skipped += other.skipped
        self.tiers.update(other.tiers)


def run_batch(
    ctx: PipelineContext, job_ids: Sequence[int], *, upcoming: Sequence[int] = ()
) -> BatchOutcome:
    """Bring every job of ``job_ids`` to a terminal state (or skip it if it already is).

    ``upcoming`` are the ids of the next batch: their images are decoded in the background
    while the model runs. Raises ``BatchError`` when scoring itself failed; the caller then
    has the jobs delivered again (their attempts are already counted).

    Every call is counted in ``moderation.metrics`` (outcomes, batch size and latency) in the
    process that runs it — the scoring worker serves those on its metrics port.
    """
    started = time.perf_counter()
    try:
        outcome = _run_batch(ctx, job_ids, upcoming)
    except BatchError:
        metrics.record_batch(time.perf_counter() - started, len(job_ids), ok=False)
        raise
    metrics.record_batch(
        time.perf_counter() - started,
        len(job_ids),
        scored=len(outcome.scored),
        failed=len(outcome.failed),
        quarantined=len(outcome.quarantined),
        skipped=len(outcome.skipped),
    )
    return outcome


def _run_batch(
    ctx: PipelineContext, job_ids: Sequence[int], upcoming: Sequence[int]
) -> BatchOutcome:
    # Fresh jobs (never delivered) are claimed and scored together, in one forward.
    outcome = _run_group(ctx, list(job_ids), upcoming, fresh_only=True)
    rest = outcome.skipped
    counts = (
        in_transaction(ctx.sessions, lambda s: jobs_repo.delivery_counts(s, rest), **_retry(ctx))
        if rest
        else {}
    )
    outcome.skipped = [j for j in rest if j not in counts]
    # A redelivered job may be what killed the previous worker: score each alone, after the
    # fresh ones are committed, so one poison image cannot drag healthy jobs to quarantine.
    suspects = [j for j in rest if j in counts]
    for i, job_id in enumerate(suspects):
        ahead = suspects[i + 1 : i + 2] or list(upcoming)
        outcome.merge(_run_group(ctx, [job_id], ahead))
    return outcome


def _retry(ctx: PipelineContext) -> dict[str, float]:
    return {"give_up_after_s": ctx.db_give_up_after_s}


def _run_group(
    ctx: PipelineContext, job_ids: list[int], ahead: Sequence[int], *, fresh_only: bool = False
) -> BatchOutcome:
    now = ctx.clock()
    claim = in_transaction(
        ctx.sessions,
        lambda s: jobs_repo.claim_jobs(
            s,
            job_ids,
            worker=ctx.worker,
            now=now,
            max_attempts=ctx.max_attempts,
            fresh_only=fresh_only,
        ),
        **_retry(ctx),
    )
    outcome = BatchOutcome(quarantined=claim.quarantined, skipped=claim.skipped)
    claimed = list(claim.claimed)
    prepared = ctx.decoder.take(claimed) if claimed else {}
    ctx.decoder.prefetch(ahead)
    if not claimed:
        return outcome
    failures = {
        p.job_id: JobFailure(p.rejected.code, p.rejected.message)
        for p in prepared.values()
        if p.rejected is not None
    }
    ok = [prepared[j] for j in claimed if j in prepared and prepared[j].image is not None]
    try:
        scores, pre, scenarios = _score(ctx, ok, claim, ahead)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.exception("scoring failed for jobs %s", [p.job_id for p in ok])
        in_transaction(
            ctx.sessions,
            lambda s: jobs_repo.record_transient_error(
                s, [p.job_id for p in ok], "scorer_error", reason
            ),
            **_retry(ctx),
        )
        raise BatchError(reason) from exc
    written = in_transaction(
        ctx.sessions,
        lambda s: _persist(ctx, s, ok, scores, pre, scenarios, failures, claim, ctx.clock()),
        **_retry(ctx),
    )
    outcome.merge(written.outcome)
    outcome.skipped += [p.job_id for p in ok if p.job_id not in written.outcome.tiers]
    if written.callbacks_due and ctx.on_callbacks_due is not None:
        try:
            ctx.on_callbacks_due(written.callbacks_due)
        except Exception:  # the reaper re-dispatches callbacks left pending
            log.exception("could not dispatch callbacks for %s", written.callbacks_due)
    return outcome


def _score(
    ctx: PipelineContext, ok: Sequence[Prepared], claim: ClaimResult, ahead: Sequence[int] = ()
) -> tuple[dict[int, ScoreSet], dict[int, PreScore], dict[int, Scenario]]:
    """Scores per job: hook matches, reused scores, and one forward for the rest; plus the
    scenarios (match, tags) of the jobs that ask for them. Once this batch's forward is done,
    the next batch's (``ahead``) starts on the device while this one is decided and written."""
    pre: dict[int, PreScore] = {}
    if ctx.hooks.pre_score is not None and ok:
        results = ctx.hooks.pre_score(ok)
        pre = {p.job_id: r for p, r in zip(ok, results, strict=True) if r is not None}
    policy = policy_named(ctx.policy)
    options = {p.job_id: _options(claim.claimed[p.job_id]) for p in ok}
    # a job comparing its image with texts needs the image's vector: it skips reuse
    texts = {j for j, o in options.items() if o.match_text or wants_tags(o, policy)}
    need = [p for p in ok if not (p.job_id in pre and pre[p.job_id].skip_model)]
    needed = {p.job_id for p in need}
    reused: dict[int, ScoreSet] = {}
    if ctx.reuse_scores and need:
        image_ids = sorted({p.image_id for p in need if p.job_id not in texts})
        reused = in_transaction(
            ctx.sessions,
            lambda s: reusable_scores(
                s,
                image_ids,
                scorer=ctx.scorer.model_id,
                catalog_version=ctx.scorer.catalog_version,
            ),
            **_retry(ctx),
        ) if image_ids else {}  # fmt: skip
    # Duplicate images inside one batch go through the model once; every sampled frame of an
    # animated image goes through it, and the image scores the max over its frames.
    to_model = {
        p.sha256: p.image
        for p in ok
        if p.image and (p.job_id in texts or (p.job_id in needed and p.image_id not in reused))
    }
    shas = list(to_model)
    frames = [(sha, n, pixels) for sha in shas for n, pixels in to_model[sha].all_frames()]
    forward: list[ScoreSet] = []
    vectors = None
    model = ctx.forward()
    if frames:
        forward, vectors = model.score(frames)
    if len(forward) != len(frames):
        raise RuntimeError(f"scorer returned {len(forward)} results for {len(frames)} images")
    per_image: dict[str, list[tuple[int, ScoreSet]]] = {}
    for (sha, number, _), score_set in zip(frames, forward, strict=True):
        per_image.setdefault(sha, []).append((number, score_set))
    fresh = {sha: max_over_frames(sets) for sha, sets in per_image.items()}
    scores: dict[int, ScoreSet] = {}
    for p in ok:
        match = pre.get(p.job_id)
        if match and match.skip_model:
            base: ScoreSet = {}
        elif p.image_id in reused and p.job_id not in texts:
            base = reused[p.image_id]
        else:
            base = fresh[p.sha256]
        scores[p.job_id] = {**base, **(match.scores if match else {})}
    # an image's vector for the scenarios is its first frame's
    rows: dict[str, int] = {}
    for i, (sha, _, _) in enumerate(frames):
        rows.setdefault(sha, i)
    made = make_scenarios(
        ctx.scorer,
        policy,
        [options[p.job_id] for p in ok],
        vectors,
        [rows.get(p.sha256) for p in ok],
        ctx.tag_vocabulary,
    )
    # the model is free now (the scenarios' texts are embedded): the next batch's forward
    # runs while this batch is decided and committed
    model.start(ctx.decoder.pending(ahead))
    return scores, pre, dict(zip([p.job_id for p in ok], made, strict=True))


def max_over_frames(frame_sets: Sequence[tuple[int, ScoreSet]]) -> ScoreSet:
    """An animated image's scores: per category the highest over its frames, the winning
    frame named in ``details["frame"]`` (a still image's one set is returned as is)."""
    if len(frame_sets) == 1:
        return frame_sets[0][1]
    best: dict[str, tuple[int, CategoryScore]] = {}
    for number, score_set in frame_sets:
        for category, score in score_set.items():
            if category not in best or score.score > best[category][1].score:
                best[category] = (number, score)
    return {
        c: dataclasses.replace(s, details={**s.details, "frame": n, "frames": len(frame_sets)})
        for c, (n, s) in best.items()
    }


def _options(claim: Claim) -> JobOptions:
    return JobOptions(
        match_text=claim.match_text,
        tags=claim.want_tags,
        context=JobContext.parse(claim.context),
    )


@dataclass(frozen=True)
class _Written:
    outcome: BatchOutcome
    callbacks_due: list[int]


def _persist(
    ctx: PipelineContext,
    session: Session,
    ok: Sequence[Prepared],
    scores: Mapping[int, ScoreSet],
    pre: Mapping[int, PreScore],
    scenarios: Mapping[int, Scenario],
    failures: Mapping[int, JobFailure],
    claim: ClaimResult,
    now: dt.datetime,
) -> _Written:
    """Write terminal states and results in one transaction (the caller acks after it)."""
    scorer = ctx.scorer
    thresholds = thresholds_for(session, scorer, ctx.thresholds_file)
    scored = jobs_repo.finish_scored(
        session,
        [p.job_id for p in ok],
        scorer=ctx.scorer.model_id,
        catalog_version=ctx.scorer.catalog_version,
        now=now,
    )
    score_rows: list[ScoreRow] = []
    decision_rows: list[DecisionRow] = []
    decided: list[DecidedJob] = []
    policy = policy_named(ctx.policy)
    rules = rules_in_force(session, ctx.action_rules_file)
    for job_id in scored:
        values = {c: s.score for c, s in scores[job_id].items()}
        # a hash similarity is not on the category's scale: the match's tier floor speaks for it
        model = {c: v for c, v in values.items() if scores[job_id][c].source != _HASH}
        scenario = scenarios[job_id]
        job_thresholds = context_thresholds(thresholds, scenario.options.context)
        decision = decide(model, job_thresholds, ctx.policy)
        decision = _with_floor(decision, pre.get(job_id), job_thresholds)
        decision = apply_policy(decision, policy, scenario.match)
        enforcement = enforcement_of(decision, pre.get(job_id), rules.rules, rules.version_id)
        decided.append(
            DecidedJob(
                job_id, decision, model, job_thresholds, escalated_category(enforcement, decision)
            )
        )
        decision_rows.append(
            _decision_row(job_id, decision, pre.get(job_id), scenario, scores[job_id], enforcement)
        )
        score_rows += _score_rows(job_id, scores[job_id], decision, job_thresholds)
    insert_scores(session, score_rows)
    insert_decisions(session, decision_rows)
    ctx.hooks.route_review(session, decided)
    failed = jobs_repo.finish_failed(session, failures, now)
    record_facts(session, _facts(ok))
    due = _callbacks(ctx, session, claim, decided)
    tiers = {d.job_id: d.decision.tier for d in decided}
    outcome = BatchOutcome(
        scored=list(scored), failed={j: failures[j] for j in failed}, tiers=tiers
    )
    return _Written(outcome, due)


_HASH = ScoreSource.HASH_MATCH
_TOP_SEVERITY = 4  # for a floored category the scorer has no thresholds (so no severity) for


def _with_floor(
    decision: Decision, match: PreScore | None, thresholds: Mapping[str, CategoryThresholds]
) -> Decision:
    """A matcher's tier floor (e.g. a confirmed-violation bank hit) wins over a lower tier.

    The floored category's tier is raised too (its score row says the same), and the review
    priority is at least what that tier earns at the category's severity — a bank hit whose
    model was skipped has no score-based priority at all."""
    floor = match.tier_floor if match else None
    if match is None or floor is None or floor.rank <= decision.tier.rank:
        return decision
    category = match.category or decision.category
    category_tiers = dict(decision.category_tiers)
    if category is not None and floor.rank > category_tiers.get(category, RiskTier.CLEAR).rank:
        category_tiers[category] = floor
    known = thresholds.get(category) if category is not None else None
    severity = known.severity if known is not None else _TOP_SEVERITY
    return dataclasses.replace(
        decision,
        tier=floor,
        action=ACTIONS[floor],
        category=category,
        category_tiers=category_tiers,
        priority=max(decision.priority, severity * floor.rank),
    )


def _deciding_frame(decision: Decision, match: PreScore | None, scores: ScoreSet) -> int | None:
    """The animation frame behind the decision: the bank-matched frame when a bank hit set
    the tier, else the frame whose score won the deciding category (None for still images)."""
    if match is not None and match.frame is not None and match.tier_floor is not None:
        if match.tier_floor.rank >= decision.tier.rank:
            return match.frame
    if decision.category is not None and decision.category in scores:
        frame = scores[decision.category].details.get("frame")
        return int(frame) if frame is not None else None
    return None


def enforcement_of(
    decision: Decision, match: PreScore | None, rules: ActionRules, version_id: int | None
) -> Enforcement:
    """The action rules applied to a decision: a category whose tier a bank hit set (the
    matcher's floor reached it) has source ``bank``, every other ``model``."""
    sources: dict[str, str] = {}
    floor = match.tier_floor if match is not None else None
    if match is not None and floor is not None:
        category = match.category or decision.category
        if category is not None and decision.category_tiers.get(category) is floor:
            sources[category] = "bank"
    return evaluate(rules, decision.category_tiers, sources, rules_version=version_id)


def escalated_category(enforcement: Enforcement, decision: Decision) -> str | None:
    """The category an escalating action rule sends to review: of the escalated categories,
    the one with the highest tier (ties: by name); None when no rule escalates."""
    escalated = [c for c, a in enforcement.categories.items() if a.escalate]
    if not escalated:
        return None
    tiers = decision.category_tiers
    return min(escalated, key=lambda c: (-tiers.get(c, RiskTier.CLEAR).rank, c))


def _decision_row(
    job_id: int,
    decision: Decision,
    match: PreScore | None,
    scenario: Scenario,
    scores: ScoreSet,
    enforcement: Enforcement | None = None,
) -> DecisionRow:
    return DecisionRow(
        job_id=job_id,
        tier=decision.tier,
        action=decision.action,
        category=decision.category,
        priority=decision.priority,
        policy=decision.policy,
        threshold_versions=dict(decision.threshold_versions),
        matched_bank_entry_id=match.bank_entry_id if match else None,
        match_distance=match.distance if match else None,
        scenario=scenario.record(),
        frame=_deciding_frame(decision, match, scores),
        enforcement=enforcement.action if enforcement else None,
        enforcement_detail=enforcement.as_dict() if enforcement else None,
    )


def _score_rows(
    job_id: int,
    scores: ScoreSet,
    decision: Decision,
    thresholds: Mapping[str, CategoryThresholds],
) -> list[ScoreRow]:
    return [
        ScoreRow(
            job_id=job_id,
            category=c,
            score=s.score,
            source=s.source,
            # a hash_match row of a category the decision never tiered stays clear
            tier=decision.category_tiers.get(c, RiskTier.CLEAR),
            phrasing=s.phrasing,
            threshold_version_id=thresholds[c].version_id if c in thresholds else None,
            details=dict(s.details) or None,
        )
        for c, s in scores.items()
    ]


def _facts(ok: Sequence[Prepared]) -> dict[int, ImageFacts]:
    facts = {}
    for p in ok:
        assert p.image is not None
        facts[p.image_id] = ImageFacts(
            image_id=p.image_id,
            width=p.image.width,
            height=p.image.height,
            format=p.image.format,
            pdq_hash=p.pdq.hex if p.pdq else None,  # hashed on decode, matched or not
            pdq_quality=p.pdq.quality if p.pdq else None,
        )
    return facts


def _callbacks(
    ctx: PipelineContext, session: Session, claim: ClaimResult, decided: Sequence[DecidedJob]
) -> list[int]:
    """Mark callbacks pending (tier at/above the minimum) or skipped; returns the pending."""
    with_url = [d for d in decided if claim.claimed[d.job_id].callback_url]
    due = [d.job_id for d in with_url if d.decision.tier.rank >= ctx.callback_min_tier.rank]
    below = [d.job_id for d in with_url if d.job_id not in due]
    jobs_repo.set_callback_state(session, due, "pending")
    jobs_repo.set_callback_state(session, below, "skipped")
    return due
