"""Calibration data: the labels CSV, and a score for each label (stored in the DB or fresh).

Rows name an image three ways: ``job_id`` or ``sha256`` of an image already scored in the DB
(its stored score is used, no model needed), or ``path`` to an image file, scored by an injected
``Scorer`` (``moderation.scoring.base``) in batches — or give the ``score`` itself (a labelled
score, e.g. exported from another system; its scale is ``scale``, else the category's version's).

``read_labels`` reads a CSV file (the CLI); ``parse_labels`` reads CSV or JSON Lines text (the
admin API, where ``path`` rows are refused: the server reads no file a caller names).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL.Image import Image as PILImage
from sqlalchemy.orm import Session

from moderation.db.repositories.scores import (
    ScoredJob,
    jobs_by_id,
    newest_scored_jobs,
    scores_of,
)
from moderation.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_WORKING_PIXELS,
    ImageRejected,
    decode_image,
)
from moderation.scoring.base import Scorer

__all__ = [
    "CalibrationError",
    "LabelRow",
    "LabelledScore",
    "LabelProblem",
    "SkippedRow",
    "parse_labels",
    "read_labels",
    "given_scores",
    "score_paths",
    "stored_scores",
]

REF_KINDS = ("job_id", "sha256", "path", "score")  # a row's first non-empty one is used
_ALIASES = {"image": "path", "image_path": "path", "id": "job_id", "label": "is_violation"}
_TRUE = {"1", "true", "t", "yes", "y", "violation"}
_FALSE = {"0", "false", "f", "no", "n", "not_violation", "ok"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_ERRORS_SHOWN = 5
MAX_SCORE = 1e6  # a given score's magnitude (every scale is far inside)


class CalibrationError(ValueError):
    """The labels or the data behind them cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class LabelRow:
    """One label: an image reference, the category, and whether the image violates it."""

    line: int  # line number in the CSV (header = 1) or the JSON Lines text (first = 1)
    kind: str  # job_id | sha256 | path | score
    ref: str  # the job id, the sha256 hex, the absolute path, or the score
    category: str
    is_violation: bool


def _parse_bool(value: str) -> bool | None:
    v = value.strip().lower()
    return True if v in _TRUE else False if v in _FALSE else None


def _header(fieldnames: Sequence[str] | None, path: Path | str) -> dict[str, str]:
    """Map the CSV's own column names to canonical ones; fail on what is missing."""
    columns: dict[str, str] = {}
    for raw in fieldnames or []:
        name = raw.strip().lower().replace(" ", "_")
        columns.setdefault(_ALIASES.get(name, name), raw)
    missing = [c for c in ("category", "is_violation") if c not in columns]
    if missing or not any(k in columns for k in REF_KINDS):
        raise CalibrationError(
            f"{path}: header needs category, is_violation and one of {', '.join(REF_KINDS)} "
            f"(image is accepted for path); got {list(fieldnames or [])}"
        )
    return columns


def _parse_row(
    raw: Mapping[str, str | None],
    columns: dict[str, str],
    line: int,
    base: Path | None,
    categories: frozenset[str] | None = None,
) -> LabelRow:
    def get(name: str) -> str:
        value = raw.get(columns[name]) if name in columns else None
        return str(value).strip() if value is not None else ""

    kind = next((k for k in REF_KINDS if get(k)), None)
    if kind is None:
        raise CalibrationError(f"line {line}: no image reference ({', '.join(REF_KINDS)})")
    ref = get(kind)
    if kind == "job_id" and not ref.isdigit():
        raise CalibrationError(f"line {line}: job_id {ref!r} is not a positive integer")
    if kind == "sha256":
        ref = ref.lower()
        if not _SHA256.match(ref):
            raise CalibrationError(f"line {line}: sha256 {ref!r} is not 64 hex digits")
    if kind == "path":
        if base is None:
            raise CalibrationError(
                f"line {line}: path rows are not accepted here (give a job_id, sha256 or score)"
            )
        ref = str((base / Path(ref).expanduser()).resolve())
    if kind == "score":
        try:
            value = float(ref)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or abs(value) > MAX_SCORE:
            raise CalibrationError(f"line {line}: score {ref[:40]!r} is not a finite number")
        ref = repr(value)
    category = get("category")
    if not category:
        raise CalibrationError(f"line {line}: empty category")
    if categories is not None and category not in categories:
        raise CalibrationError(f"line {line}: category {category[:64]!r} is not in the catalog")
    label = _parse_bool(get("is_violation"))
    if label is None:
        raise CalibrationError(
            f"line {line}: is_violation {get('is_violation')!r} is not one of 1/0, true/false, "
            "yes/no, violation/not_violation"
        )
    return LabelRow(line, kind, ref, category, label)


def read_labels(path: Path, *, categories: frozenset[str] | None = None) -> list[LabelRow]:
    """Parse and check the labels CSV; every problem is reported with its line number.
    ``categories``: the catalog's; a row of another category is a bad line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows, errors = _parse_csv(fh, path, path.parent, categories)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CalibrationError(f"cannot read labels file {path}: {exc}") from None
    if errors:
        more = (
            f" (and {len(errors) - MAX_ERRORS_SHOWN} more)"
            if len(errors) > MAX_ERRORS_SHOWN
            else ""
        )
        raise CalibrationError(
            f"{path}: " + "; ".join(e.message for e in errors[:MAX_ERRORS_SHOWN]) + more
        )
    if not rows:
        raise CalibrationError(f"{path}: no label rows")
    return rows


@dataclass(frozen=True)
class LabelProblem:
    """A bad line of uploaded labels: its number and what is wrong (``line N: …``)."""

    line: int
    message: str


def _problem(exc: CalibrationError, line: int) -> LabelProblem:
    return LabelProblem(line, str(exc))


def _parse_csv(
    lines: Iterable[str], source: Path | str, base: Path | None, categories: frozenset[str] | None
) -> tuple[list[LabelRow], list[LabelProblem]]:
    reader = csv.DictReader(lines)
    columns = _header(reader.fieldnames, source)
    rows, errors = [], []
    for raw in reader:
        try:
            rows.append(_parse_row(raw, columns, reader.line_num, base, categories))
        except CalibrationError as exc:
            errors.append(_problem(exc, reader.line_num))
    return rows, errors


def _parse_jsonl(
    lines: Iterable[str], categories: frozenset[str] | None
) -> tuple[list[LabelRow], list[LabelProblem]]:
    rows, errors = [], []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
            if not isinstance(item, dict):
                raise CalibrationError(f"line {number}: not a JSON object")
            values = {
                str(k): v if isinstance(v, str) else json.dumps(v)
                for k, v in item.items()
                if v is not None
            }
            columns = _header(list(values), f"line {number}")
            rows.append(_parse_row(values, columns, number, None, categories))
        except ValueError as exc:  # CalibrationError, or JSON that does not parse
            message = str(exc) if isinstance(exc, CalibrationError) else "not valid JSON"
            if not message.startswith("line "):
                message = f"line {number}: {message}"
            errors.append(LabelProblem(number, message))
    return rows, errors


def parse_labels(
    text: str, *, fmt: str = "csv", categories: frozenset[str] | None = None
) -> tuple[list[LabelRow], list[LabelProblem]]:
    """Uploaded labels (CSV with a header, or JSON Lines with the same keys) → the good rows
    and every bad line with its number. ``path`` rows are bad lines: no file is read.
    ``CalibrationError`` for a CSV header that lacks a needed column."""
    lines = text.splitlines()
    if fmt == "jsonl":
        return _parse_jsonl(lines, categories)
    try:
        return _parse_csv(lines, "labels", None, categories)
    except csv.Error as exc:
        raise CalibrationError(f"labels: not a readable CSV: {exc}") from None


@dataclass(frozen=True)
class LabelledScore:
    """The score of one label row's image for the row's category, and where it came from."""

    row: LabelRow
    score: float
    model_id: str | None  # the scorer that produced it (jobs.scorer or Scorer.model_id)
    version_id: int | None = None  # threshold version the stored score was tiered with


@dataclass(frozen=True)
class SkippedRow:
    """A row left out of the calibration (unreadable or undecodable image)."""

    line: int
    ref: str
    reason: str


def _fail_rows(problem: str, rows: Sequence[LabelRow]) -> CalibrationError:
    shown = ", ".join(f"line {r.line} ({r.ref})" for r in rows[:MAX_ERRORS_SHOWN])
    more = f" and {len(rows) - MAX_ERRORS_SHOWN} more" if len(rows) > MAX_ERRORS_SHOWN else ""
    return CalibrationError(f"{problem}: {shown}{more}")


def _jobs_for(session: Session, rows: Sequence[LabelRow]) -> dict[int, ScoredJob]:
    """The job behind each row: the job itself, or the newest scored job of the image."""
    by_row: dict[int, ScoredJob] = {}
    jobs = jobs_by_id(session, {int(r.ref) for r in rows if r.kind == "job_id"})
    newest = newest_scored_jobs(session, {r.ref for r in rows if r.kind == "sha256"})
    for r in rows:
        job = jobs.get(int(r.ref)) if r.kind == "job_id" else newest.get(r.ref)
        if job is not None:
            by_row[r.line] = job
    missing = [r for r in rows if r.line not in by_row]
    if missing:
        raise _fail_rows("no such scored job or image in the database", missing)
    return by_row


def given_scores(rows: Sequence[LabelRow]) -> list[LabelledScore]:
    """The labelled scores of ``score`` rows, as given (no model id: the caller's scores)."""
    return [LabelledScore(r, float(r.ref), None) for r in rows]


def stored_scores(session: Session, rows: Sequence[LabelRow]) -> list[LabelledScore]:
    """Scores already in the DB for rows naming a ``job_id`` or an image ``sha256``."""
    if not rows:
        return []
    jobs = _jobs_for(session, rows)
    scores = scores_of(session, {j.id for j in jobs.values()})
    out, missing = [], []
    for r in rows:
        job = jobs[r.line]
        stored = scores.get((job.id, r.category))
        if stored is None:
            missing.append(r)
            continue
        out.append(LabelledScore(r, stored.score, job.scorer, stored.threshold_version_id))
    if missing:
        raise _fail_rows("no stored score for the row's category", missing)
    return out


def _load(path: str, max_bytes: int, max_pixels: int, working_pixels: int) -> PILImage | str:
    """The decoded image, or the reason it cannot be used."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # one byte over the cap is enough to refuse it
        return decode_image(
            data, max_bytes=max_bytes, max_pixels=max_pixels, working_pixels=working_pixels
        ).image
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    except ImageRejected as exc:
        return str(exc)


def _score_batch(
    paths: Sequence[str], scorer: Scorer, max_bytes: int, max_pixels: int, working_pixels: int
) -> dict[str, Mapping[str, float] | str]:
    """Scores per path for one batch (one model call), or why the file was left out."""
    out: dict[str, Mapping[str, float] | str] = {}
    images: dict[str, PILImage] = {}
    for path in paths:
        loaded = _load(path, max_bytes, max_pixels, working_pixels)
        if isinstance(loaded, str):
            out[path] = loaded
        else:
            images[path] = loaded
    if images:
        score_sets = scorer.score_images(list(images.values()))
        for path, score_set in zip(images, score_sets, strict=True):
            out[path] = {c: s.score for c, s in score_set.items()}
    return out


def score_paths(
    rows: Sequence[LabelRow],
    scorer: Scorer,
    *,
    max_bytes: int = 25 * 1024 * 1024,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    working_pixels: int = DEFAULT_WORKING_PIXELS,
    batch_size: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[LabelledScore], list[SkippedRow]]:
    """Score each distinct image file once, in batches; unusable files are skipped, not fatal.

    Rows whose category the scorer does not produce are an error (a typo in the labels must not
    silently shrink the calibration set).
    """
    unknown = [r for r in rows if r.category not in scorer.categories]
    if unknown:
        raise _fail_rows(
            f"categories not scored by {scorer.model_id} "
            f"(it scores {', '.join(scorer.categories)})",
            unknown,
        )
    paths = list(dict.fromkeys(r.ref for r in rows))
    results: dict[str, Mapping[str, float] | str] = {}
    for start in range(0, len(paths), batch_size):
        batch = paths[start : start + batch_size]
        results.update(_score_batch(batch, scorer, max_bytes, max_pixels, working_pixels))
        if on_progress is not None:
            on_progress(len(results), len(paths))
    out, skipped = [], []
    for r in rows:
        got = results[r.ref]
        if isinstance(got, str):
            skipped.append(SkippedRow(r.line, r.ref, got))
        elif r.category not in got:
            reason = f"{scorer.model_id} gave no {r.category} score"
            skipped.append(SkippedRow(r.line, r.ref, reason))
        else:
            out.append(LabelledScore(r, float(got[r.category]), scorer.model_id))
    return out, skipped
