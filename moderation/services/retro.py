"""Retro-matching: when a bank entry is added or re-enabled, find the images stored in the
last ``bank_retro_days`` whose PDQ hash is within the match distance and re-decide their jobs.

A run is a row (``retro_runs``) with a cursor over image ids: it scans the stored hashes a
page at a time, each page in its own transaction (cursor, counts and re-decisions commit
together), so a run killed half-way resumes where it stopped, and the unique (job, entry)
pair in ``retro_matches`` keeps a re-run from deciding twice. A re-decision keeps the old
decision in ``decision_history``, raises the tier to the bank's violation tier (never lowers
it: the same floor a live ``set_tier_and_score`` hit applies), names the entry in the reason
(``retro_match: bank entry #…``) and marks the job's callback pending when the new tier
crosses ``callback_min_tier`` for the first time.

Entry points: ``schedule`` (create a run, and have a worker run it — the ``RETRO_TASK``
Celery task — or run it in this process for the embedded SQLite default) and ``resume``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from moderation.actions.resolver import rules_in_force
from moderation.actions.rules import evaluate_change
from moderation.config import Settings
from moderation.db.repositories import banks as banks_repo
from moderation.db.repositories import jobs as jobs_repo
from moderation.db.repositories import retro as repo
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.domain import BankKind, RiskTier
from moderation.hashbank.hashing import compute_pdq, hashes_to_words, split_hashes
from moderation.hashbank.retro import EntryHashes, match_stored
from moderation.images import ImageRejected, decode_image
from moderation.thresholds.tiers import ACTIONS

__all__ = [
    "RETRO_SWEEP_TASK",
    "RETRO_TASK",
    "RetroProgress",
    "RunOutcome",
    "latest_runs",
    "resume",
    "retro_match_now",
    "schedule",
    "start_run",
    "sweep",
]

log = logging.getLogger(__name__)

RETRO_TASK = "moderation.retro_match"
RETRO_SWEEP_TASK = "moderation.retro_sweep"
RetroProgress = repo.RunRecord
PAGE = 50_000  # stored hashes per transaction
_TOP_SEVERITY = 4


@dataclass(frozen=True)
class RunOutcome:
    run: repo.RunRecord
    callbacks_due: list[int]


def latest_runs(session: Session, limit: int = 20) -> list[repo.RunRecord]:
    return repo.latest_runs(session, limit)


def start_run(
    sessions: sessionmaker[Session], settings: Settings, entry_ids: Sequence[int], *, trigger: str
) -> repo.RunRecord:
    now = utcnow()
    since = now - dt.timedelta(days=settings.bank_retro_days)

    def create(session: Session) -> repo.RunRecord:
        repo.mark_covered(session, entry_ids, now)
        return repo.create_run(session, entry_ids, trigger=trigger, since=since)

    return in_transaction(sessions, create)


def sweep(
    sessions: sessionmaker[Session], settings: Settings, *, stale_after_s: float = 600.0
) -> list[RunOutcome]:
    """The workers' periodic safety net: one run for every violation entry added or
    re-enabled without one (a reviewer's confirmation, a broker that was down), then every
    run left unfinished (pending, or running with no progress for ``stale_after_s``)."""
    entry_ids = in_transaction(sessions, repo.entries_needing_retro)
    if entry_ids:
        start_run(sessions, settings, entry_ids, trigger="sweep")
    stale = utcnow() - dt.timedelta(seconds=stale_after_s)
    run_ids = in_transaction(sessions, lambda s: repo.runs_to_resume(s, stale))
    return [resume(sessions, settings, run_id) for run_id in run_ids]


def retro_match_now(
    sessions: sessionmaker[Session],
    settings: Settings,
    entry_ids: Sequence[int],
    *,
    trigger: str,
    on_progress: Callable[[repo.RunRecord], None] | None = None,
) -> repo.RunRecord:
    """Create a run and run it to the end in this process (callbacks it makes due stay
    pending for the reaper / a worker to send)."""
    run = start_run(sessions, settings, entry_ids, trigger=trigger)
    return resume(sessions, settings, run.id, on_progress=on_progress).run


def schedule(
    sessions: sessionmaker[Session],
    settings: Settings,
    entry_ids: Sequence[int],
    *,
    trigger: str,
    send_task: Callable[..., object] | None = None,
) -> repo.RunRecord:
    """Retro-match ``entry_ids``: with ``send_task`` (a Celery client's) the run is queued
    for a worker; without one, or if the broker cannot take it, it runs here and now."""
    run = start_run(sessions, settings, entry_ids, trigger=trigger)
    if send_task is not None:
        try:
            send_task(RETRO_TASK, args=[run.id], queue=settings.ops_queue_name)
            return run
        except Exception as exc:  # a dead broker: do the work here rather than lose it
            log.warning("could not queue retro-match run %s (running it here): %s", run.id, exc)
    return resume(sessions, settings, run.id).run


def resume(
    sessions: sessionmaker[Session],
    settings: Settings,
    run_id: int,
    *,
    page: int = PAGE,
    on_progress: Callable[[repo.RunRecord], None] | None = None,
) -> RunOutcome:
    """Run (or continue) ``run_id`` from its cursor to the end."""
    run = in_transaction(sessions, lambda s: repo.get_run(s, run_id))
    if run is None:
        raise LookupError(f"no retro-match run {run_id}")
    if run.status == "done":
        return RunOutcome(run, [])
    in_transaction(
        sessions, lambda s: repo.update_run(s, run_id, status="running", started_at=utcnow())
    )
    try:
        entries, meta = in_transaction(sessions, lambda s: _entry_hashes(s, settings, run))
        due: list[int] = []
        severities = _severities(sessions, settings)
        while True:
            step = in_transaction(
                sessions,
                lambda s: _step(s, settings, run_id, entries, meta, severities, page),
            )
            due += step.callbacks_due
            run = step.run
            if on_progress is not None:
                on_progress(run)
            if run.status == "done":
                return RunOutcome(run, due)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        in_transaction(
            sessions, lambda s: repo.update_run(s, run_id, status="failed", error=reason)
        )
        raise


def _entry_hashes(
    session: Session, settings: Settings, run: repo.RunRecord
) -> tuple[list[EntryHashes], dict[int, repo.RetroEntry]]:
    """Every hash each enabled violation entry matches by: its own, its crop windows and,
    when its image is stored, the image's rotations/mirrors (as live matching compares)."""
    if settings.bank_violation_mode == "off":
        return [], {}
    entries = [
        e
        for e in repo.entries_for(session, run.entry_ids)
        if e.enabled and e.bank is BankKind.CONFIRMED_VIOLATION
    ]
    out = []
    for e in entries:
        hashes = [e.pdq_hash, *split_hashes(e.crop_hashes)]
        if settings.bank_match_flips and e.image_id is not None:
            hashes += _variants(session, e.image_id)
        out.append(EntryHashes(e.id, hashes_to_words(sorted(set(hashes)))))
    return out, {e.id: e for e in entries}


def _variants(session: Session, image_id: int) -> list[str]:
    data = banks_repo.image_bytes(session, image_id)
    if data is None:
        return []
    try:
        pdq = compute_pdq(decode_image(data, max_frames=1).image, dihedral=True)
    except (ImageRejected, ValueError):
        return []
    return [hex_ for _, hex_ in pdq.queries(with_variants=True)]


def _severities(sessions: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Category severities of the thresholds in force (for the review priority); empty when
    they cannot be resolved (every category then counts as the most severe)."""
    from moderation.thresholds.resolver import thresholds_in_force

    try:
        found = in_transaction(sessions, lambda s: thresholds_in_force(s, settings))
    except Exception:
        log.exception("cannot resolve thresholds for retro-match priorities")
        return {}
    return {c: t.severity for c, t in found.items()}


def _step(
    session: Session,
    settings: Settings,
    run_id: int,
    entries: list[EntryHashes],
    meta: dict[int, repo.RetroEntry],
    severities: dict[str, int],
    page: int,
) -> RunOutcome:
    """One page of stored hashes: match, re-decide, advance the cursor — one transaction."""
    run = repo.get_run(session, run_id)
    assert run is not None
    last, rows = repo.stored_hashes(session, since=run.since, after_id=run.cursor, limit=page)
    if last is None:
        repo.update_run(session, run_id, status="done", finished_at=utcnow())
        return RunOutcome(repo.get_run(session, run_id), [])  # type: ignore[arg-type]
    usable = [r for r in rows if r[2] is None or r[2] >= settings.bank_min_quality]
    stored = hashes_to_words([r[1] for r in usable]) if usable else np.zeros((0, 4), np.uint64)
    hits = match_stored(entries, stored, settings.bank_match_threshold)
    by_image: dict[int, list[tuple[int, int]]] = {}
    for hit in hits:
        by_image.setdefault(usable[hit.row][0], []).append((hit.entry_id, hit.distance))
    redecided = 0
    due: list[int] = []
    floor = RiskTier(settings.bank_violation_tier)
    min_tier = RiskTier(settings.callback_min_tier)
    rules = rules_in_force(session, settings.action_rules_file)
    for job in repo.jobs_of_images(session, sorted(by_image)):
        tier, category, priority = job.tier, job.category, job.priority
        detail = job.enforcement_detail
        for entry_id, distance in by_image[job.image_id]:
            if entry_id in job.done_entries:
                continue
            entry = meta[entry_id]
            old = tier
            if floor.rank > tier.rank:
                tier, category = floor, entry.category
            severity = severities.get(category or "", _TOP_SEVERITY)
            priority = max(priority, severity * tier.rank)
            reason = (
                f"retro_match: bank entry #{entry_id} ({entry.bank.value}/{entry.category}) "
                f"at distance {distance}"
            )
            # the entry's category, raised to the bank's tier by a retro-match (source retro)
            enforced = evaluate_change(
                rules.rules, detail, entry.category, floor, "retro", rules_version=rules.version_id,
            )  # fmt: skip
            if not repo.record_redecision(
                session, job_id=job.job_id, entry_id=entry_id, run_id=run_id,
                distance=distance, tier=tier, action=ACTIONS[tier], category=category,
                priority=priority, reason=reason, enforcement=enforced.action,
                enforcement_detail=enforced.as_dict(),
            ):  # fmt: skip
                continue
            detail = enforced.as_dict()
            redecided += 1
            crossed = old.rank < min_tier.rank <= tier.rank
            if job.callback_url and crossed and job.callback_state != "pending":
                due.append(job.job_id)
    jobs_repo.set_callback_state(session, due, "pending")
    repo.update_run(
        session,
        run_id,
        cursor=last,
        started_at=utcnow(),  # progress: a live run never looks stale to the sweep
        scanned=run.scanned + len(rows),
        matched=run.matched + len(by_image),
        redecided=run.redecided + redecided,
    )
    return RunOutcome(repo.get_run(session, run_id), due)  # type: ignore[arg-type]
