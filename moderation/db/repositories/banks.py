"""Hash-bank entries: add, list, disable/enable (never delete), and incremental loads by id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from moderation.db.models import AuditLogEntry, BankEntry, Image, ImageBlob, Job
from moderation.db.types import utcnow
from moderation.domain import BankKind
from moderation.hashbank.exchange import ExchangeEntry
from moderation.hashbank.hashing import is_pdq_hex, join_hashes, split_hashes

__all__ = [
    "BankEntryRecord",
    "BankHashRow",
    "BankStats",
    "JobImage",
    "UnknownBankEntry",
    "UnknownJob",
    "add_entry",
    "count_up_to",
    "disabled_ids",
    "find_duplicate",
    "ImportResult",
    "bank_version",
    "hit_times",
    "export_entries",
    "get_entries",
    "import_entries",
    "get_entry",
    "image_bytes",
    "job_image",
    "list_entries",
    "load_since",
    "set_enabled",
    "set_image_hash",
    "stats",
]


class UnknownBankEntry(LookupError):
    """No bank entry has this id."""


class UnknownJob(LookupError):
    """No job has this id."""


@dataclass(frozen=True)
class BankEntryRecord:
    id: int
    bank: BankKind
    category: str | None
    pdq_hash: str
    pdq_quality: int | None
    image_id: int | None
    source_job_id: int | None
    added_by: str
    reason: str | None
    enabled: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    crop_count: int = 0  # hashes of trimmed windows stored with the entry


@dataclass(frozen=True, slots=True)
class BankHashRow:
    """What the in-memory index needs of an entry (loaded by the ten thousand)."""

    id: int
    bank: BankKind
    category: str | None
    pdq_hash: str
    enabled: bool
    crop_hashes: str | None = None  # joined (``split_hashes``); None unless asked for


@dataclass(frozen=True)
class JobImage:
    """The image of a job and its PDQ hash as stored at intake (None for images never hashed)."""

    job_id: int
    image_id: int
    pdq_hash: str | None
    pdq_quality: int | None


@dataclass(frozen=True)
class BankStats:
    bank: BankKind
    category: str | None
    enabled: int
    disabled: int


def _record(row: BankEntry) -> BankEntryRecord:
    return BankEntryRecord(
        id=row.id,
        bank=row.bank,
        category=row.category,
        pdq_hash=row.pdq_hash,
        pdq_quality=row.pdq_quality,
        image_id=row.image_id,
        source_job_id=row.source_job_id,
        added_by=row.added_by,
        reason=row.reason,
        enabled=row.enabled,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        crop_count=len(split_hashes(row.crop_hashes)),
    )


def _check_bank_category(bank: BankKind, category: str | None) -> None:
    if bank is BankKind.CONFIRMED_VIOLATION and not category:
        raise ValueError("a confirmed_violation entry needs a category")
    if bank is BankKind.BENIGN and category:
        raise ValueError("benign entries have no category")


def add_entry(
    session: Session,
    *,
    bank: BankKind,
    pdq_hash: str,
    pdq_quality: int | None,
    added_by: str,
    category: str | None = None,
    reason: str | None = None,
    image_id: int | None = None,
    source_job_id: int | None = None,
    crop_hashes: Sequence[str] = (),
) -> BankEntryRecord:
    """Insert an entry (enabled) and its audit-log row. Quality policy is the caller's.
    ``crop_hashes`` are the hashes of trimmed windows of the image, matched as this entry."""
    bank = BankKind(bank)
    _check_bank_category(bank, category)
    if not is_pdq_hex(pdq_hash):
        raise ValueError(f"not a PDQ hash (64 lower-case hex digits): {pdq_hash!r}")
    row = BankEntry(
        bank=bank,
        category=category,
        pdq_hash=pdq_hash,
        pdq_quality=pdq_quality,
        crop_hashes=join_hashes(crop_hashes),
        image_id=image_id,
        source_job_id=source_job_id,
        added_by=added_by,
        reason=reason,
        enabled=True,
        changed_at=utcnow(),
    )
    session.add(row)
    session.flush()
    _audit(session, added_by, "bank.add", row, {"bank": bank.value, "category": category})
    return _record(row)


def _audit(session: Session, actor: str, action: str, row: BankEntry, details: dict) -> None:  # type: ignore[type-arg]
    session.add(
        AuditLogEntry(
            actor=actor,
            action=action,
            target_type="bank_entry",
            target_id=str(row.id),
            details=details,
        )
    )


def find_duplicate(
    session: Session, bank: BankKind, category: str | None, pdq_hash: str
) -> BankEntryRecord | None:
    """An enabled entry with exactly this hash in the same bank and category, if any."""
    query = select(BankEntry).where(
        BankEntry.pdq_hash == pdq_hash,
        BankEntry.bank == BankKind(bank),
        BankEntry.enabled.is_(True),
        BankEntry.category.is_(None) if category is None else BankEntry.category == category,
    )
    row = session.scalars(query.order_by(BankEntry.id).limit(1)).first()
    return _record(row) if row is not None else None


def get_entry(session: Session, entry_id: int) -> BankEntryRecord | None:
    row = session.get(BankEntry, entry_id)
    return _record(row) if row is not None else None


def get_entries(session: Session, entry_ids: Sequence[int]) -> dict[int, BankEntryRecord]:
    rows = session.scalars(select(BankEntry).where(BankEntry.id.in_(list(entry_ids))))
    return {row.id: _record(row) for row in rows}


def list_entries(
    session: Session,
    *,
    bank: BankKind | None = None,
    category: str | None = None,
    include_disabled: bool = False,
    limit: int = 100,
) -> list[BankEntryRecord]:
    """Entries newest first."""
    query = select(BankEntry).order_by(BankEntry.id.desc()).limit(limit)
    if bank is not None:
        query = query.where(BankEntry.bank == BankKind(bank))
    if category is not None:
        query = query.where(BankEntry.category == category)
    if not include_disabled:
        query = query.where(BankEntry.enabled.is_(True))
    return [_record(row) for row in session.scalars(query)]


def set_enabled(
    session: Session, entry_id: int, *, enabled: bool, actor: str, reason: str | None = None
) -> BankEntryRecord:
    """Disable (or re-enable) an entry; the row is kept, and the change is audit-logged.
    Raises ``UnknownBankEntry``."""
    row = session.get(BankEntry, entry_id, with_for_update=True)
    if row is None:
        raise UnknownBankEntry(f"no bank entry with id {entry_id}")
    if row.enabled != enabled:
        row.enabled = enabled
        row.disabled_at = None if enabled else utcnow()
        row.changed_at = utcnow()
        session.flush()
        action = "bank.enable" if enabled else "bank.disable"
        _audit(session, actor, action, row, {"reason": reason} if reason else {})
    return _record(row)


def load_since(
    session: Session, after_id: int, *, limit: int = 10_000, crops: bool = False
) -> list[BankHashRow]:
    """Entries (enabled or not) with ``id > after_id``, ascending — one page of an incremental
    load; call again from the last id until a page comes back short. ``crops`` also reads the
    entries' crop-window hashes."""
    columns = [BankEntry.id, BankEntry.bank, BankEntry.category, BankEntry.pdq_hash,
               BankEntry.enabled]  # fmt: skip
    if crops:
        columns.append(BankEntry.crop_hashes)
    query = select(*columns).where(BankEntry.id > after_id).order_by(BankEntry.id).limit(limit)
    return [BankHashRow(*row) for row in session.execute(query)]


def disabled_ids(session: Session) -> list[int]:
    """Ids of every disabled entry (the bank+enabled index serves it; disabling is rare)."""
    query = select(BankEntry.id).where(
        BankEntry.bank.in_(list(BankKind)), BankEntry.enabled.is_(False)
    )
    return list(session.scalars(query))


def count_up_to(session: Session, max_id: int) -> int:
    """How many entries have ``id <= max_id``. Compared with what the index loaded, this
    reveals rows that committed late with an id below the last one seen (concurrent inserts
    commit out of id order), or rows deleted by hand; either calls for a full reload."""
    return int(session.scalar(select(func.count(BankEntry.id)).where(BankEntry.id <= max_id)) or 0)


def stats(session: Session) -> list[BankStats]:
    """Entry counts per (bank, category)."""
    query = (
        select(BankEntry.bank, BankEntry.category, BankEntry.enabled, func.count())
        .group_by(BankEntry.bank, BankEntry.category, BankEntry.enabled)
    )  # fmt: skip
    counts: dict[tuple[BankKind, str | None], list[int]] = {}
    for bank, category, enabled, n in session.execute(query):
        counts.setdefault((bank, category), [0, 0])[0 if enabled else 1] += n
    return [
        BankStats(bank=b, category=c, enabled=e, disabled=d)
        for (b, c), (e, d) in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]


def job_image(session: Session, job_id: int) -> JobImage:
    """The image behind ``job_id``. Raises ``UnknownJob``."""
    query = (
        select(Job.id, Image.id, Image.pdq_hash, Image.pdq_quality)
        .join(Image, Image.id == Job.image_id)
        .where(Job.id == job_id)
    )
    row = session.execute(query).first()
    if row is None:
        raise UnknownJob(f"no job with id {job_id}")
    return JobImage(*row)


def image_bytes(session: Session, image_id: int) -> bytes | None:
    """The stored upload bytes of an image, when they were kept."""
    return session.scalar(select(ImageBlob.data).where(ImageBlob.image_id == image_id))


def set_image_hash(session: Session, image_id: int, pdq_hash: str, pdq_quality: int) -> None:
    """Record an image's PDQ hash (for images stored before hashing at intake)."""
    image = session.get(Image, image_id)
    if image is not None:
        image.pdq_hash, image.pdq_quality = pdq_hash, pdq_quality
        session.flush()


@dataclass(frozen=True)
class ImportResult:
    added: list[int]  # ids of the new entries, ascending
    duplicates: int  # already banked (same bank, category and hash) or repeated in the file
    low_quality: int  # quality below the floor: not banked


_IMPORT_PAGE = 5_000


def import_entries(
    session: Session,
    entries: Sequence[ExchangeEntry],
    *,
    imported_by: str,
    file_name: str | None = None,
    min_quality: int = 0,
) -> ImportResult:
    """Bank ``entries`` (parsed hash-list lines) in bulk, with their provenance (source list,
    tags, importer, time). An entry whose (bank, category, hash) is already banked and enabled,
    or repeated in the list, is a duplicate: re-importing a list adds nothing. One audit-log
    row for the whole import."""
    now = utcnow()
    low = [e for e in entries if e.quality is not None and e.quality < min_quality]
    fresh: dict[tuple[BankKind, str | None, str], ExchangeEntry] = {}
    for e in entries:
        if e.quality is None or e.quality >= min_quality:
            fresh.setdefault((e.bank, e.category, e.hash), e)
    keys = list(fresh)
    existing = select(BankEntry.bank, BankEntry.category, BankEntry.pdq_hash).where(
        BankEntry.enabled.is_(True)
    )
    if len(keys) > _IMPORT_PAGE:
        # a big list: one pass over the enabled entries beats many long IN lists (Postgres
        # planned 5,000-hash IN lists at ~3 s each on a freshly filled table)
        for bank, category, pdq_hash in session.execute(existing):
            fresh.pop((BankKind(bank), category, pdq_hash), None)
    else:
        hashes = sorted({h for _, _, h in keys})
        for bank, category, pdq_hash in session.execute(
            existing.where(BankEntry.pdq_hash.in_(hashes))
        ):
            fresh.pop((BankKind(bank), category, pdq_hash), None)
    rows = [
        {
            "bank": e.bank,
            "category": e.category,
            "pdq_hash": e.hash,
            "pdq_quality": e.quality,
            "added_by": imported_by,
            "reason": f"imported from {e.source or file_name or 'a hash list'}",
            "enabled": True,
            "created_at": e.added_at or now,
            "changed_at": now,
            "source": e.source,
            "tags": list(e.tags) or None,
            "imported_by": imported_by,
            "imported_at": now,
        }
        for e in fresh.values()
    ]
    # Core executemany (no per-row RETURNING: 3× faster); the new ids are read back by the
    # import's own stamp (importer and time) above the highest id seen before it
    before = session.scalar(select(func.max(BankEntry.id))) or 0
    table = BankEntry.__table__
    for start in range(0, len(rows), _IMPORT_PAGE):
        session.execute(insert(table), rows[start : start + _IMPORT_PAGE])
    added: list[int] = []
    if rows:
        added = list(
            session.scalars(
                select(BankEntry.id).where(
                    BankEntry.id > before,
                    BankEntry.imported_by == imported_by,
                    BankEntry.imported_at == now,
                )
            )
        )
    duplicates = len(entries) - len(low) - len(added)
    session.add(
        AuditLogEntry(
            actor=imported_by,
            action="bank.import",
            target_type="bank_entry",
            target_id=f"{min(added)}..{max(added)}" if added else "",
            details={
                "file": file_name,
                "added": len(added),
                "duplicates": duplicates,
                "low_quality": len(low),
            },
        )
    )
    session.flush()
    return ImportResult(sorted(added), duplicates, len(low))


def export_entries(
    session: Session,
    *,
    bank: BankKind | None = None,
    category: str | None = None,
    include_disabled: bool = False,
    page: int = 10_000,
) -> Iterator[ExchangeEntry]:
    """Entries as hash-list lines, oldest first, read a page at a time."""
    after = 0
    columns = (
        BankEntry.id,
        BankEntry.pdq_hash,
        BankEntry.pdq_quality,
        BankEntry.bank,
        BankEntry.category,
        BankEntry.tags,
        BankEntry.source,
        BankEntry.created_at,
    )
    while True:
        query = select(*columns).where(BankEntry.id > after).order_by(BankEntry.id).limit(page)
        if bank is not None:
            query = query.where(BankEntry.bank == BankKind(bank))
        if category is not None:
            query = query.where(BankEntry.category == category)
        if not include_disabled:
            query = query.where(BankEntry.enabled.is_(True))
        rows = session.execute(query).all()
        for _, pdq_hash, quality, bank_kind, category_, tags, source, created_at in rows:
            yield ExchangeEntry(
                hash=pdq_hash,
                quality=quality,
                bank=BankKind(bank_kind),
                category=category_,
                tags=tuple(tags or ()),
                source=source,
                added_at=created_at,
            )
        if len(rows) < page:
            return
        after = rows[-1][0]


def bank_version(session: Session) -> tuple[int | None, dt.datetime | None]:
    """(max id, max changed_at) of the bank entries: changes whenever an entry is added,
    disabled or re-enabled — what a worker compares before each batch (two index lookups)."""
    row = session.execute(select(func.max(BankEntry.id), func.max(BankEntry.changed_at))).one()
    return row[0], row[1]


def hit_times(session: Session, since: dt.datetime) -> list[dt.datetime]:
    """When each decision that names a bank entry was made, since ``since`` (the dashboard's
    bank hits per hour; retro re-decisions count when they were made)."""
    from moderation.db.models import Decision

    query = select(Decision.decided_at).where(
        Decision.decided_at >= since, Decision.matched_bank_entry_id.is_not(None)
    )
    return list(session.scalars(query))
