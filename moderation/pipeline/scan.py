"""``moderation scan``: every image of a folder through the pipeline, in-process (no broker)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db.repositories.scores import job_outcomes
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.images import sha256_hex
from moderation.scoring.base import Scorer

from .batch import BatchError, run_batch
from .context import PipelineContext, build_context
from .intake import Submission, register_submissions

__all__ = ["IMAGE_SUFFIXES", "INTAKE_CHUNK", "ScanReport", "find_images", "scan_paths"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass
class ScanReport:
    job_ids: list[int]
    # category → tier → number of images
    tiers: dict[str, dict[str, int]] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)  # overall tier → images
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # path, code, reason
    scorer: str = ""


def find_images(root: Path, *, recursive: bool = False) -> list[Path]:
    """Image files (by suffix) under ``root``, sorted; a file path is taken as is."""
    if root.is_file():
        return [root]
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _submissions(paths: Sequence[Path]) -> list[Submission]:
    subs = []
    for path in paths:
        data = path.read_bytes()  # hashed here, decoded later by the pipeline (bounded there)
        subs.append(
            Submission(
                sha256=sha256_hex(data),
                byte_size=len(data),
                storage_uri=path.resolve().as_uri(),
                source="scan",
                external_id=str(path),
            )
        )
    return subs


# Files registered (and scored) per step: bounds memory, the size of each statement (PostgreSQL
# takes at most 65,535 parameters in one) and what a crash mid-scan leaves to redo.
INTAKE_CHUNK = 1000
REPORT_CHUNK = 10_000  # job ids per IN (…) of the report queries


def scan_paths(
    settings: Settings,
    scorer: Scorer,
    sessions: sessionmaker[Session],
    paths: Sequence[Path],
    *,
    on_progress: Callable[[int], None] = lambda n: None,
    intake_chunk: int = INTAKE_CHUNK,
) -> ScanReport:
    """Queue one job per file and run them through ``run_batch`` — the worker's code path —
    ``intake_chunk`` files at a time."""
    ctx = build_context(settings, scorer, sessions, worker=f"scan@{socket.gethostname()}")
    ids: list[int] = []
    try:
        for start in range(0, len(paths), intake_chunk):
            chunk = _register(sessions, _submissions(paths[start : start + intake_chunk]))
            ids += chunk
            _score_all(ctx, settings, chunk, on_progress)
    finally:
        ctx.close()
    return in_transaction(sessions, lambda s: _report(s, ids, scorer.model_id))


def _register(sessions: sessionmaker[Session], subs: list[Submission]) -> list[int]:
    return in_transaction(sessions, lambda s: register_submissions(s, subs, utcnow()))


def _score_all(
    ctx: PipelineContext, settings: Settings, ids: list[int], on_progress: Callable[[int], None]
) -> None:
    batches = [ids[i : i + settings.batch_size] for i in range(0, len(ids), settings.batch_size)]
    for i, batch in enumerate(batches):
        upcoming = batches[i + 1] if i + 1 < len(batches) else []
        # What redelivery does for the worker: try again; attempts end in quarantine.
        for _ in range(settings.max_attempts + 1):
            try:
                run_batch(ctx, batch, upcoming=upcoming)
                break
            except BatchError:
                continue
        on_progress(len(batch))


def _report(session: Session, ids: list[int], scorer: str) -> ScanReport:
    report = ScanReport(job_ids=ids, scorer=scorer)
    for start in range(0, len(ids), REPORT_CHUNK):
        _add_to_report(session, report, ids[start : start + REPORT_CHUNK])
    return report


def _add_to_report(session: Session, report: ScanReport, ids: list[int]) -> None:
    outcomes = job_outcomes(session, ids)
    for category, tier, n in outcomes.score_tiers:
        tiers = report.tiers.setdefault(category, {})
        tiers[tier] = tiers.get(tier, 0) + n
    for tier, n in outcomes.decision_tiers:
        report.decisions[tier] = report.decisions.get(tier, 0) + n
    report.failures += [(str(p), str(c), str(e)) for p, c, e in outcomes.failures]
