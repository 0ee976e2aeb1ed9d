"""Hash banks for the operator: list, count, look up, disable/re-enable entries, import and
export hash lists.

Adding to a bank (hashing an image or a given hash, quality floor, crop windows) and matching
are ``moderation.hashbank.banks``; this module is what the CLI and the admin API read and
toggle. New and re-enabled entries are what retro-matching (``moderation.hashbank.retro``)
looks for in past uploads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy.orm import Session

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
from moderation.hashbank.exchange import (
    COLUMNS,
    Format,
    ParseError,
    detect_format,
    format_entries,
    parse_lines,
)

__all__ = [
    "COLUMNS",
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
