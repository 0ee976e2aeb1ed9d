"""Bank entries on both backends: add/list/disable, incremental loads, audit log rows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from moderation.db import make_sessionmaker
from moderation.db.models import AuditLogEntry, Image, ImageBlob, Job
from moderation.db.repositories import banks as repo
from moderation.domain import BankKind

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def _add(session, pdq_hash, bank=BankKind.CONFIRMED_VIOLATION, category="sexual", **kw):
    return repo.add_entry(
        session, bank=bank, pdq_hash=pdq_hash, pdq_quality=90, added_by="tester",
        category=category if bank is BankKind.CONFIRMED_VIOLATION else None, **kw,
    )  # fmt: skip


def test_add_list_disable_enable_round_trip(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        first = _add(s, H1, reason="seen before")
        second = _add(s, H2, bank=BankKind.BENIGN)
    assert first.enabled and first.bank is BankKind.CONFIRMED_VIOLATION
    assert first.created_at.tzinfo is not None
    with Session.begin() as s:
        off = repo.set_enabled(s, first.id, enabled=False, actor="admin", reason="mistake")
    assert not off.enabled and off.disabled_at is not None
    with Session() as s:
        assert [e.id for e in repo.list_entries(s)] == [second.id]
        assert [e.id for e in repo.list_entries(s, include_disabled=True)] == [second.id, first.id]
        assert [e.id for e in repo.list_entries(s, bank=BankKind.BENIGN)] == [second.id]
        assert repo.list_entries(s, category="gore") == []
        assert repo.disabled_ids(s) == [first.id]
        counts = {(c.bank, c.category): (c.enabled, c.disabled) for c in repo.stats(s)}
        assert counts == {
            (BankKind.BENIGN, None): (1, 0),
            (BankKind.CONFIRMED_VIOLATION, "sexual"): (0, 1),
        }
        actions = s.scalars(select(AuditLogEntry.action).order_by(AuditLogEntry.id)).all()
        assert actions == ["bank.add", "bank.add", "bank.disable"]
    with Session.begin() as s:
        on = repo.set_enabled(s, first.id, enabled=True, actor="admin")
        assert on.enabled and on.disabled_at is None
        assert repo.disabled_ids(s) == []


def test_unknown_entry_raises(engine):
    with make_sessionmaker(engine).begin() as s, pytest.raises(repo.UnknownBankEntry):
        repo.set_enabled(s, 12345, enabled=False, actor="admin")


@pytest.mark.parametrize(
    ("bank", "category", "pdq_hash", "message"),
    [
        (BankKind.CONFIRMED_VIOLATION, None, H1, "needs a category"),
        (BankKind.BENIGN, "sexual", H1, "no category"),
        (BankKind.BENIGN, None, "XYZ", "not a PDQ hash"),
        (BankKind.BENIGN, None, "AB" * 32, "not a PDQ hash"),
    ],
)
def test_invalid_entries_are_refused(engine, bank, category, pdq_hash, message):
    with make_sessionmaker(engine).begin() as s, pytest.raises(ValueError, match=message):
        repo.add_entry(
            s, bank=bank, pdq_hash=pdq_hash, pdq_quality=90, added_by="t", category=category
        )


def test_load_since_pages_in_id_order(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        ids = [_add(s, h).id for h in (H1, H2, H3)]
        repo.set_enabled(s, ids[1], enabled=False, actor="t")
    with Session() as s:
        page = repo.load_since(s, 0, limit=2)
        assert [r.id for r in page] == ids[:2]
        assert [r.enabled for r in page] == [True, False]
        rest = repo.load_since(s, page[-1].id, limit=2)
        assert [(r.id, r.pdq_hash, r.category) for r in rest] == [(ids[2], H3, "sexual")]
        assert repo.load_since(s, ids[2]) == []
        assert repo.count_up_to(s, ids[1]) == 2


def test_find_duplicate_is_per_bank_category_and_enabled(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        entry = _add(s, H1)
    with Session.begin() as s:
        assert repo.find_duplicate(s, BankKind.CONFIRMED_VIOLATION, "sexual", H1).id == entry.id
        assert repo.find_duplicate(s, BankKind.CONFIRMED_VIOLATION, "gore", H1) is None
        assert repo.find_duplicate(s, BankKind.BENIGN, None, H1) is None
        repo.set_enabled(s, entry.id, enabled=False, actor="t")
        assert repo.find_duplicate(s, BankKind.CONFIRMED_VIOLATION, "sexual", H1) is None


def test_job_image_lookup_and_hash_backfill(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        image = Image(sha256="a" * 64, byte_size=3)
        s.add(image)
        s.flush()
        s.add(ImageBlob(image_id=image.id, data=b"abc"))
        job = Job(image_id=image.id)
        s.add(job)
        s.flush()
        job_id, image_id = job.id, image.id
    with Session.begin() as s:
        found = repo.job_image(s, job_id)
        assert (found.image_id, found.pdq_hash) == (image_id, None)
        assert repo.image_bytes(s, image_id) == b"abc"
        repo.set_image_hash(s, image_id, H2, 77)
    with Session() as s:
        assert repo.job_image(s, job_id).pdq_hash == H2
        assert repo.job_image(s, job_id).pdq_quality == 77
        with pytest.raises(repo.UnknownJob):
            repo.job_image(s, job_id + 100)
