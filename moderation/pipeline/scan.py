"""``moderation scan``: every file of a folder through the pipeline, in-process (no broker).

Every file is accounted for. Regular files are submitted whatever their name: the decoder
sniffs the content, so an ``.svg``, a text file or a suffix-less JPEG each get a job that is
scored or failed with a reason (``not_an_image``…). What cannot be submitted at all — a file
that cannot be read, a FIFO, socket or device (never opened, so a scan never blocks on one) —
is reported as failed without a job (a job needs the image's bytes: images are
content-addressed). The scan's own SQLite database is skipped when it lies in the folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db.repositories.jobs import JobFailure, finish_failed
from moderation.db.repositories.scores import JobResult, job_results
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from moderation.scoring.base import Scorer

from .batch import BatchError, run_batch
from .context import PipelineContext, build_context
from .intake import Submission, register_submissions

__all__ = [
    "INTAKE_CHUNK",
    "FileListing",
    "FileResult",
    "ScanEntry",
    "ScanReport",
    "find_files",
    "scan_paths",
]

log = logging.getLogger(__name__)

# Codes of files that get no job (the decoder's codes — not_an_image, truncated… — come with
# the job of every regular file that could be read).
UNREADABLE = "unreadable"
NOT_A_FILE = "not_a_file"
ABORTED = "scan_aborted"

_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ScanEntry:
    """One file to account for; ``problem`` (code, reason) when it cannot be submitted."""

    path: Path
    problem: tuple[str, str] | None = None


@dataclass
class FileListing:
    entries: list[ScanEntry]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # not scanned, and why


@dataclass(frozen=True)
class FileResult:
    """What became of one file: its job (None when it got none), the job's status, the overall
    tier and (score, tier) per category when scored, else the failure code and reason."""

    path: str
    job_id: int | None
    status: str
    tier: str | None = None
    categories: dict[str, tuple[float, str]] = field(default_factory=dict)
    error_code: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == JobStatus.SCORED


@dataclass
class ScanReport:
    job_ids: list[int] = field(default_factory=list)
    # category → tier → number of images
    tiers: dict[str, dict[str, int]] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)  # overall tier → images
    failures: list[FileResult] = field(default_factory=list)  # with their code and reason
    scorer: str = ""
    files: int = 0  # every file accounted for
    scored: int = 0

    @property
    def failed(self) -> int:
        return self.files - self.scored

    def add(self, result: FileResult) -> None:
        self.files += 1
        if result.job_id is not None:
            self.job_ids.append(result.job_id)
        if not result.ok:
            self.failures.append(result)
            return
        self.scored += 1
        for category, (_score, tier) in result.categories.items():
            tiers = self.tiers.setdefault(category, {})
            tiers[tier] = tiers.get(tier, 0) + 1
        if result.tier is not None:
            self.decisions[result.tier] = self.decisions.get(result.tier, 0) + 1


# --- listing ------------------------------------------------------------------------------------


def find_files(root: Path, *, recursive: bool = False, exclude: Iterable[Path] = ()) -> FileListing:
    """Every file under ``root`` (a file path is taken as is), sorted, each classified without
    being opened; ``exclude`` (e.g. the scan's own database and its journals) is skipped."""
    excluded = {_real(p) for p in exclude}
    listing = FileListing(entries=[])
    if not root.is_dir():
        listing.entries.append(_classify(root))
        return listing
    _walk(root, recursive, excluded, listing)
    listing.entries.sort(key=lambda e: str(e.path))
    return listing


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _walk(folder: Path, recursive: bool, excluded: set[str], listing: FileListing) -> None:
    try:
        with os.scandir(folder) as it:
            names = sorted(entry.name for entry in it)
    except OSError as exc:
        listing.entries.append(ScanEntry(folder, (UNREADABLE, _os_reason("folder", exc))))
        return
    for name in names:
        path = folder / name
        if _real(path) in excluded:
            listing.skipped.append((path, "the scan's own database"))
            continue
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError as exc:
            listing.entries.append(ScanEntry(path, (UNREADABLE, _os_reason("file", exc))))
            continue
        if is_dir:
            if recursive:
                _walk(path, recursive, excluded, listing)
            else:
                listing.skipped.append((path, "a subfolder (use --recursive)"))
            continue
        entry = _classify(path)
        if entry.problem is None and path.is_symlink() and path.is_dir():
            listing.skipped.append((path, "a link to a folder (not followed)"))
            continue
        listing.entries.append(entry)


def _classify(path: Path) -> ScanEntry:
    """A regular file (or a link to one) is submitted; anything else gets its reason."""
    try:
        mode = os.stat(path).st_mode  # follows links
    except FileNotFoundError:
        kind = "a broken symbolic link" if path.is_symlink() else "no such file"
        return ScanEntry(path, (UNREADABLE, f"cannot read {path}: {kind}"))
    except OSError as exc:
        return ScanEntry(path, (UNREADABLE, _os_reason("file", exc)))
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ScanEntry(path)
    return ScanEntry(path, (NOT_A_FILE, f"{_kind(mode)}, not a regular file: not opened"))


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a special file"


def _os_reason(what: str, exc: OSError) -> str:
    return f"cannot read the {what}: {exc.strerror or exc}"


# --- scanning -----------------------------------------------------------------------------------


def _submission(path: Path) -> Submission:
    """Hash the file in 1 MiB reads (memory stays bounded whatever its size); the pipeline
    decodes it later from its ``file://`` location (bounded there by ``max_upload_bytes``).
    Opened non-blocking and checked to be a regular file, in case it was swapped for a FIFO
    since it was listed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise IsADirectoryError(21, "not a regular file")
        digest, size = hashlib.sha256(), 0
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Submission(
        sha256=digest.hexdigest(),
        byte_size=size,
        storage_uri=path.resolve().as_uri(),
        source="scan",
        external_id=str(path),
    )


# Files registered (and scored) per step: bounds memory, the size of each statement (PostgreSQL
# takes at most 65,535 parameters in one) and what a crash mid-scan leaves to redo.
INTAKE_CHUNK = 1000


def scan_paths(
    settings: Settings,
    scorer: Scorer,
    sessions: sessionmaker[Session],
    entries: Sequence[ScanEntry | Path],
    *,
    on_progress: Callable[[int], None] = lambda n: None,
    on_file: Callable[[FileResult], None] = lambda r: None,
    intake_chunk: int = INTAKE_CHUNK,
) -> ScanReport:
    """Queue one job per readable file and run them through ``run_batch`` — the worker's code
    path — ``intake_chunk`` files at a time; ``on_file`` gets every file's result in order.

    Should the run stop anyway (an error, Ctrl-C), the jobs it registered and did not finish
    are failed with code ``scan_aborted`` and the cause, never left ``queued``/``processing``
    (``moderation jobs failed`` lists them, ``jobs retry`` requeues them)."""
    items = [e if isinstance(e, ScanEntry) else ScanEntry(e) for e in entries]
    ctx = build_context(settings, scorer, sessions, worker=f"scan@{socket.gethostname()}")
    report = ScanReport(scorer=scorer.model_id)
    try:
        for start in range(0, len(items), intake_chunk):
            chunk = items[start : start + intake_chunk]
            for result in _scan_chunk(ctx, settings, chunk, on_progress):
                report.add(result)
                on_file(result)
    finally:
        ctx.close()
    return report


def _scan_chunk(
    ctx: PipelineContext,
    settings: Settings,
    chunk: Sequence[ScanEntry],
    on_progress: Callable[[int], None],
) -> list[FileResult]:
    results: dict[int, FileResult] = {}  # position in chunk → result, for files without a job
    submitted: list[tuple[int, Submission]] = []
    for i, entry in enumerate(chunk):
        problem = entry.problem
        if problem is None:
            try:
                submitted.append((i, _submission(entry.path)))
                continue
            except OSError as exc:
                problem = (UNREADABLE, _os_reason("file", exc))
        code, reason = problem
        results[i] = FileResult(
            str(entry.path), None, JobStatus.FAILED, error_code=code, error=reason
        )
    if results:
        on_progress(len(results))
    ids = _register(ctx.sessions, [sub for _, sub in submitted]) if submitted else []
    try:
        _score_all(ctx, settings, ids, on_progress)
        outcomes = _results(ctx.sessions, ids)
    except BaseException as exc:
        _abandon(ctx.sessions, ids, exc)
        raise
    for (i, sub), job_id in zip(submitted, ids, strict=True):
        results[i] = _file_result(sub.external_id or "", job_id, outcomes.get(job_id))
    return [results[i] for i in range(len(chunk))]


def _file_result(path: str, job_id: int, outcome: JobResult | None) -> FileResult:
    if outcome is None:  # deleted under our feet: say so rather than guess
        return FileResult(path, job_id, "missing", error_code="missing", error="job not found")
    return FileResult(
        path,
        job_id,
        outcome.status,
        tier=outcome.decision_tier,
        categories=outcome.categories,
        error_code=outcome.error_code if outcome.status != JobStatus.SCORED else None,
        error=outcome.error if outcome.status != JobStatus.SCORED else None,
    )


def _register(sessions: sessionmaker[Session], subs: list[Submission]) -> list[int]:
    return in_transaction(sessions, lambda s: register_submissions(s, subs, utcnow()))


def _results(sessions: sessionmaker[Session], ids: list[int]) -> dict[int, JobResult]:
    return in_transaction(sessions, lambda s: job_results(s, ids)) if ids else {}


def _abandon(sessions: sessionmaker[Session], ids: list[int], cause: BaseException) -> None:
    """Fail the chunk's unfinished jobs with the cause (terminal jobs are left as they are)."""
    if not ids:
        return
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    failure = JobFailure(ABORTED, f"the scan stopped before this job finished: {text}"[:2000])
    try:
        in_transaction(sessions, lambda s: finish_failed(s, dict.fromkeys(ids, failure), utcnow()))
    except Exception:  # the database itself may be what failed: the cause is what matters
        log.exception("could not mark the unfinished jobs of an aborted scan failed")


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
