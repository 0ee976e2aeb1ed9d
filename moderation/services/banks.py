"""Hash banks for the operator: list, count, look up, disable/re-enable entries, import and
export hash lists.

Adding to a bank (hashing an image or a given hash, quality floor, crop windows) and matching
are ``moderation.hashbank.banks``; this module is what the CLI (``moderation bank …``) and the
admin API (``/v1/banks/…``) call: ``add_image`` / ``add_hash``, ``match_hash``, the toggles,
import and export. New and re-enabled entries are what retro-matching
(``moderation.hashbank.retro``) looks for in past uploads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from PIL.Image import Image as PILImage
from sqlalchemy.orm import Session

from moderation.config import Settings
from moderation.db.repositories.banks import (
    BankEntryRecord,
    BankStats,
    ImportResult,
    UnknownBankEntry,
    export_entries,
    get_entries,
    hit_times,
    import_entries,
    list_entries,
    set_enabled,
    stats,
)
from moderation.db.repositories.retro import RunRecord, latest_runs
from moderation.domain import BankKind
from moderation.hashbank.banks import (
    BankAddResult,
    BankHit,
    BankMatch,
    BankMatcher,
    bank_hash,
    match_before_scoring,
)
from moderation.hashbank.exchange import (
    COLUMNS,
    Format,
    ParseError,
    detect_format,
    format_entries,
    parse_lines,
)
from moderation.hashbank.hashing import PdqHash, compute_crop_hashes, compute_pdq
from moderation.images import decode_image

__all__ = [
    "COLUMNS",
    "BankAddResult",
    "BankCategoryError",
    "BankLookup",
    "add_hash",
    "add_image",
    "check_bank_category",
    "decode_bank_image",
    "match_hash",
    "match_pdq",
    "BankActivity",
    "bank_activity",
    "BankEntryRecord",
    "BankStats",
    "HashListImport",
    "ParseError",
    "UnknownBankEntry",
    "detect_format",
    "export_hash_list",
    "get_entries",
    "import_hash_list",
    "list_entries",
    "set_enabled",
    "stats",
]


@dataclass(frozen=True)
class HashListImport:
    """What an import did: entries added (their ids: what retro-matching is run for),
    duplicates and low-quality hashes skipped, and every malformed line with its number."""

    result: ImportResult
    errors: list[ParseError]
    lines: int  # entries parsed (valid lines)

    @property
    def added(self) -> list[int]:
        return self.result.added


def import_hash_list(
    session: Session,
    lines: Iterable[str],
    *,
    fmt: Format,
    imported_by: str,
    file_name: str | None = None,
    default_bank: BankKind | None = None,
    default_category: str | None = None,
    default_source: str | None = None,
    min_quality: int = 0,
    categories: frozenset[str] | None = None,
) -> HashListImport:
    """Parse a CSV / JSON Lines hash list and bank its valid lines in bulk (bad lines are
    reported and skipped; the good ones are imported all the same). ``categories``: the
    catalog's (``reviews.catalog_categories``); a violation under another is a bad line."""
    parsed = parse_lines(
        lines,
        fmt,
        default_bank=default_bank,
        default_category=default_category,
        default_source=default_source or file_name,
        categories=categories,
    )
    result = import_entries(
        session,
        parsed.entries,
        imported_by=imported_by,
        file_name=file_name,
        min_quality=min_quality,
    )
    return HashListImport(result, parsed.errors, len(parsed.entries))


def export_hash_list(
    session: Session,
    *,
    fmt: Format = "csv",
    bank: BankKind | None = None,
    category: str | None = None,
    include_disabled: bool = False,
) -> Iterator[str]:
    """The bank as a hash list (CSV or JSON Lines), a line at a time."""
    entries = export_entries(
        session, bank=bank, category=category, include_disabled=include_disabled
    )
    return format_entries(entries, fmt)


@dataclass(frozen=True)
class BankActivity:
    """What the dashboard's Banks page shows: hits per hour, entries per bank, recent
    retro-matching runs."""

    hits_per_hour: list[tuple[dt.datetime, int]]  # every hour of the window, oldest first
    stats: list[BankStats]
    runs: list[RunRecord]


def bank_activity(session: Session, now: dt.datetime, hours: int, runs: int = 20) -> BankActivity:
    start = (now - dt.timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    counts: dict[dt.datetime, int] = {}
    for when in hit_times(session, start):
        hour = when.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        counts[hour] = counts.get(hour, 0) + 1
    series = []
    hour = start
    while hour <= now:
        series.append((hour, counts.get(hour, 0)))
        hour += dt.timedelta(hours=1)
    return BankActivity(series, stats(session), latest_runs(session, runs))


class BankCategoryError(ValueError):
    """The bank and the category do not go together (the message says how)."""


def check_bank_category(
    bank: BankKind, category: str | None, categories: frozenset[str] | None
) -> None:
    """A confirmed violation needs a catalog category (``reviews.catalog_categories``); the
    benign bank has none."""
    if bank is BankKind.CONFIRMED_VIOLATION and not category:
        raise BankCategoryError("a category is required for the confirmed_violation bank")
    if bank is BankKind.BENIGN and category:
        raise BankCategoryError("the benign bank has no categories; leave the category out")
    if category is not None and categories is not None and category not in categories:
        raise BankCategoryError(
            f"category {category!r} is not in the catalog: {', '.join(sorted(categories))}"
        )


def decode_bank_image(data: bytes, settings: Settings) -> PILImage:
    """The picture to bank or look up, under the upload limits (``ImageRejected`` says why
    not): an animation's first frame, as a bank entry is one picture."""
    return decode_image(
        data,
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        working_pixels=settings.decode_pixels,
        max_frames=1,
    ).image


def add_hash(
    session: Session,
    pdq: PdqHash,
    *,
    bank: BankKind,
    category: str | None,
    actor: str,
    reason: str,
    settings: Settings,
    crop_hashes: tuple[str, ...] = (),
) -> BankAddResult:
    """Bank a hash (audit-logged; low-quality hashes and duplicates are not added). The
    caller checks the category first (``check_bank_category``) and retro-matches new entries."""
    return bank_hash(
        session, bank=bank, pdq=pdq, added_by=actor, category=category, reason=reason,
        min_quality=settings.bank_min_quality, crop_hashes=crop_hashes,
    )  # fmt: skip


def add_image(
    session: Session,
    image: PILImage,
    *,
    bank: BankKind,
    category: str | None,
    actor: str,
    reason: str,
    settings: Settings,
) -> tuple[PdqHash, BankAddResult]:
    """Hash a decoded image (PDQ, plus its crop windows per ``MODERATION_BANK_CROP_*``) and
    bank it with ``add_hash``."""
    pdq = compute_pdq(image)
    crops = compute_crop_hashes(
        image,
        settings.bank_crop_grid,
        keep=settings.bank_crop_keep,
        min_quality=settings.bank_min_quality,
    )
    result = add_hash(
        session, pdq, bank=bank, category=category, actor=actor, reason=reason,
        settings=settings, crop_hashes=crops,
    )  # fmt: skip
    return pdq, result


@dataclass(frozen=True)
class BankLookup:
    """What ``bank match`` shows: the nearest entries (with their records), and the verdict a
    worker would reach for this hash."""

    pdq: PdqHash
    nearest: list[BankHit]
    details: dict[int, BankEntryRecord]
    verdict: BankMatch | None
    bank_size: int  # entries loaded

    def as_dict(self, settings: Settings) -> dict[str, object]:
        threshold = settings.bank_match_threshold
        v = self.verdict
        return {
            "pdq_hash": self.pdq.hex,
            "quality": self.pdq.quality,
            "threshold": threshold,
            "nearest": [
                {
                    "entry_id": h.entry_id,
                    "bank": h.bank.value,
                    "category": h.category,
                    "distance": h.distance,
                    "variant": h.variant,
                    "within_threshold": h.distance <= threshold,
                    "reason": self.details[h.entry_id].reason
                    if h.entry_id in self.details
                    else None,
                }
                for h in self.nearest
            ],
            "match": None
            if v is None
            else {
                "bank": v.bank.value,
                "category": v.category,
                "entry_id": v.entry_id,
                "distance": v.distance,
                "variant": v.variant,
                "tier": v.tier.value if v.tier else None,
                "skip_model": v.skip_model,
            },
        }


def match_hash(session: Session, pdq: PdqHash, settings: Settings, *, top: int = 5) -> BankLookup:
    """The ``top`` nearest enabled entries to ``pdq`` (its flips too, when it carries them and
    ``MODERATION_BANK_MATCH_FLIPS`` is on) and the verdict a worker would reach."""
    matcher = BankMatcher.from_settings(settings)
    matcher.refresh(session)
    nearest = matcher.nearest(pdq, top, flips=settings.bank_match_flips)
    details = get_entries(session, [h.entry_id for h in nearest])
    verdict = match_before_scoring(pdq, matcher, settings)
    return BankLookup(pdq, nearest, details, verdict, len(matcher))


def match_pdq(image: PILImage, settings: Settings) -> PdqHash:
    """The hash ``match_hash`` looks up for an image: with its 7 flips when
    ``MODERATION_BANK_MATCH_FLIPS`` is on (as workers hash uploads)."""
    return compute_pdq(image, dihedral=settings.bank_match_flips)
