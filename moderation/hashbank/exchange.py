"""Hash-list exchange: the CSV / JSON Lines files trust-and-safety teams share (HMA /
ThreatExchange-style PDQ lists), parsed and written without touching the database.

Columns (CSV header, JSON keys): ``hash`` (64 hex digits), ``quality`` (0–100, optional),
``bank`` (``confirmed_violation`` or ``benign``), ``category`` (required for violations),
``tags`` (CSV: ``;``-separated; JSON: a list), ``source`` (the list's name), ``added_at``
(ISO 8601, optional). Parsing never stops at a bad line: each one is reported with its line
number and skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from moderation.domain import BankKind
from moderation.hashbank.hashing import is_pdq_hex

__all__ = [
    "COLUMNS",
    "ExchangeEntry",
    "Format",
    "ParseError",
    "Parsed",
    "detect_format",
    "format_entries",
    "parse_lines",
]

COLUMNS = ("hash", "quality", "bank", "category", "tags", "source", "added_at")
Format = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class ExchangeEntry:
    hash: str
    quality: int | None
    bank: BankKind
    category: str | None
    tags: tuple[str, ...]
    source: str | None
    added_at: dt.datetime | None


@dataclass(frozen=True)
class ParseError:
    line: int  # 1-based line number in the file
    message: str


@dataclass(frozen=True)
class Parsed:
    entries: list[ExchangeEntry]
    errors: list[ParseError]


def detect_format(name: str, head: str) -> Format:
    """``jsonl`` for ``.jsonl``/``.json``/``.ndjson`` names or text starting with ``{``."""
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


def parse_lines(
    lines: Iterable[str],
    fmt: Format,
    *,
    default_bank: BankKind | None = None,
    default_category: str | None = None,
    default_source: str | None = None,
    categories: frozenset[str] | None = None,
) -> Parsed:
    """Every valid entry of the file and every bad line (number and reason). Defaults fill
    empty ``bank`` / ``category`` / ``source`` fields; with ``categories`` (the catalog's), a
    violation entry under any other category is a bad line."""
    entries: list[ExchangeEntry] = []
    errors: list[ParseError] = []
    defaults = (default_bank, default_category, default_source)
    records = _csv_records(lines) if fmt == "csv" else _jsonl_records(lines)
    for number, record in records:
        if isinstance(record, str):
            errors.append(ParseError(number, record))
            continue
        try:
            entry = _entry(record, *defaults)
        except ValueError as exc:
            errors.append(ParseError(number, str(exc)))
            continue
        if categories is not None and entry.category is not None:
            if entry.category not in categories:
                errors.append(
                    ParseError(number, f"category {entry.category!r} is not in the catalog")
                )
                continue
        entries.append(entry)
    return Parsed(entries, errors)


def _csv_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(lines)
    header: list[str] | None = None
    for row in reader:
        number = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            if "hash" not in header:
                yield number, f"the header has no 'hash' column (columns: {', '.join(COLUMNS)})"
                return
            continue
        if len(row) > len(header):
            yield number, f"{len(row)} fields, the header has {len(header)}"
            continue
        record = dict(zip(header, (cell.strip() for cell in row), strict=False))
        if record.get("tags"):
            record["tags"] = [t.strip() for t in record["tags"].split(";") if t.strip()]
        yield number, record


def _jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not JSON: {exc.msg}"
            continue
        if not isinstance(record, dict):
            yield number, "not a JSON object"
            continue
        yield number, record


def _entry(
    record: dict[str, Any],
    default_bank: BankKind | None,
    default_category: str | None,
    default_source: str | None,
) -> ExchangeEntry:
    raw_hash = record.get("hash")
    hex_hash = raw_hash.strip().lower() if isinstance(raw_hash, str) else raw_hash
    if not is_pdq_hex(hex_hash):
        raise ValueError(f"hash must be 64 hex digits, got {_short(raw_hash)}")
    quality = _quality(record.get("quality"))
    bank_name = record.get("bank") or (default_bank.value if default_bank else None)
    if not bank_name:
        raise ValueError("no bank (confirmed_violation or benign) and no default given")
    try:
        bank = BankKind(str(bank_name).strip())
    except ValueError:
        raise ValueError(f"unknown bank {_short(bank_name)}") from None
    category = _text(record.get("category"), "category") or (
        default_category if bank is BankKind.CONFIRMED_VIOLATION else None
    )
    if bank is BankKind.CONFIRMED_VIOLATION and not category:
        raise ValueError("a confirmed_violation entry needs a category")
    if bank is BankKind.BENIGN and category:
        raise ValueError("benign entries have no category")
    if category is not None and len(category) > 64:
        raise ValueError("category longer than 64 characters")
    source = _text(record.get("source"), "source") or default_source
    if source is not None and len(source) > 200:
        raise ValueError("source longer than 200 characters")
    return ExchangeEntry(
        hash=str(hex_hash),
        quality=quality,
        bank=bank,
        category=category,
        tags=_tags(record.get("tags")),
        source=source,
        added_at=_when(record.get("added_at")),
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {_short(value)}")
    return value.strip() or None


def _quality(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        quality = int(str(value))
    except ValueError:
        raise ValueError(f"quality must be an integer 0-100, got {_short(value)}") from None
    if not 0 <= quality <= 100:
        raise ValueError(f"quality must be 0-100, got {quality}")
    return quality


def _tags(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = list(value.split(";"))
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"tags must be a list of strings, got {_short(value)}")
    return tuple(t.strip() for t in value if t.strip())


def _when(value: object) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"added_at must be an ISO 8601 time, got {_short(value)}")
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"added_at must be an ISO 8601 time, got {_short(value)}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def format_entries(entries: Iterable[ExchangeEntry], fmt: Format) -> Iterator[str]:
    """The file's text, a chunk at a time (header first for CSV); lines end with ``\\n``."""
    if fmt == "csv":
        yield ",".join(COLUMNS) + "\n"
    for e in entries:
        added = e.added_at.astimezone(dt.UTC).isoformat() if e.added_at else None
        if fmt == "jsonl":
            record = {
                "hash": e.hash,
                "quality": e.quality,
                "bank": e.bank.value,
                "category": e.category,
                "tags": list(e.tags),
                "source": e.source,
                "added_at": added,
            }
            yield json.dumps(record, separators=(",", ":")) + "\n"
        else:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(
                [
                    e.hash,
                    "" if e.quality is None else e.quality,
                    e.bank.value,
                    e.category or "",
                    ";".join(e.tags),
                    e.source or "",
                    added or "",
                ]
            )
            yield buf.getvalue()
