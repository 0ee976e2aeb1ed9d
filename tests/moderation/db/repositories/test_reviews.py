"""The review queue on both backends (claims, leases, review rules), and claiming under
concurrency on real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import (
    AuditLogEntry,
    AuditSample,
    BankEntry,
    Image,
    Job,
    Review,
    ReviewItem,
    Score,
)
from moderation.db.repositories import reviews as repo
from moderation.domain import (
    ReviewItemKind,
    ReviewItemStatus,
    ReviewLabel,
    RiskTier,
    ScoreSource,
)
from moderation.services import reviews as service

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
PDQ = "f" * 32 + "0" * 32  # a valid-looking 256-bit hash


def make_items(sessions, specs, *, pdq: str | None = None):
    """One job + review item per spec (priority, kind, category, score); returns item ids."""
    ids = []
    with sessions.begin() as s:
        for n, (priority, kind, category, score) in enumerate(specs):
            image = Image(sha256=uuid.uuid4().hex * 2, byte_size=10, pdq_hash=pdq,
                          pdq_quality=90 if pdq else None)  # fmt: skip
            s.add(image)
            s.flush()
            job = Job(image_id=image.id, external_id=f"ext-{n}")
            s.add(job)
            s.flush()
            source = ScoreSource.CLASSIFIER
            s.add(Score(job_id=job.id, category=category, score=score, source=source,
                        phrasing="p", tier=RiskTier.HIGH))  # fmt: skip
            item = ReviewItem(
                job_id=job.id, kind=kind, category=category, score=score, tier=RiskTier.HIGH,
                priority=priority, inclusion_probability=1.0 if kind == "queue" else 0.25,
                created_at=T0 + dt.timedelta(seconds=n),
            )  # fmt: skip
            s.add(item)
            s.flush()
            ids.append(item.id)
    return ids


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def claim(sessions, reviewer, n=10, lease_s=60, now=T0, **kw):
    with sessions.begin() as s:
        return service.claim_items(s, reviewer=reviewer, n=n, lease_s=lease_s, now=now, **kw)


def review(sessions, item_id, reviewer, label="violation", now=T0, **kw):
    with sessions.begin() as s:
        return service.record_review(
            s, item_id=item_id, reviewer=reviewer, label=label, now=now, **kw
        )


def test_claims_go_by_priority_then_age_and_carry_what_a_reviewer_needs(sessions):
    q = ReviewItemKind.QUEUE
    ids = make_items(sessions, [(1.0, q, "sexual", 0.5), (9.0, q, "violence", 0.9),
                                (1.0, q, "sexual", 0.6), (5.0, q, "sexual", 0.7)])  # fmt: skip
    got = claim(sessions, "rita", n=3)
    assert [c.item_id for c in got] == [ids[1], ids[3], ids[0]]
    first = got[0]
    assert first.kind is ReviewItemKind.QUEUE and first.tier is RiskTier.HIGH
    assert first.scores == {"violence": (0.9, "p", RiskTier.HIGH)}
    assert first.external_id == "ext-1" and first.review_categories == ("violence",)
    assert first.claim_expires_at == T0 + dt.timedelta(seconds=60)
    # the rest goes to the next reviewer; nothing is handed out twice
    assert [c.item_id for c in claim(sessions, "sam")] == [ids[2]]
    assert claim(sessions, "tom") == []
    with sessions() as s:
        rows = {i.id: i for i in s.scalars(select(ReviewItem))}
        assert rows[ids[1]].claimed_by == "rita" and rows[ids[1]].status == "claimed"
        log = s.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "review.claim")).all()
        assert [e.actor for e in log] == ["rita", "sam"]
        assert log[0].details["item_ids"] == sorted([ids[0], ids[1], ids[3]])


def test_audit_items_waiting_too_long_are_claimed_before_the_queue(sessions):
    q, a = ReviewItemKind.QUEUE, ReviewItemKind.AUDIT
    # created 1 s apart: the two audits are the oldest, but rank last by priority
    ids = make_items(sessions, [(0.1, a, "sexual", 0.1), (0.2, a, "sexual", 0.2),
                                (9.0, q, "violence", 0.9), (5.0, q, "sexual", 0.7)])  # fmt: skip
    wait = 600

    def order(now, n=4, **kw):
        got = claim(sessions, "rita", n=n, now=now, audit_max_wait_s=wait, **kw)
        with sessions.begin() as s:  # hand them back for the next look
            for item in s.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids))):
                item.status, item.claimed_by, item.claim_expires_at = "open", None, None
        return [c.item_id for c in got]

    # not yet overdue: priority order, audits last
    assert order(T0 + dt.timedelta(seconds=wait - 1)) == [ids[2], ids[3], ids[1], ids[0]]
    # the first audit is overdue: it goes first, the rest by priority
    assert order(T0 + dt.timedelta(seconds=wait)) == [ids[0], ids[2], ids[3], ids[1]]
    # both overdue: oldest first, and they fill a small claim on their own
    assert order(T0 + dt.timedelta(seconds=wait + 1), n=2) == [ids[0], ids[1]]
    # off (None): priority only, whatever the age
    later = T0 + dt.timedelta(days=1)
    got = claim(sessions, "rita", n=1, now=later)
    assert [c.item_id for c in got] == [ids[2]]


def test_expired_leases_return_and_own_claims_come_back(sessions):
    [item] = make_items(sessions, [(1.0, ReviewItemKind.QUEUE, "sexual", 0.5)])
    claim(sessions, "rita", lease_s=60)
    assert claim(sessions, "sam", now=T0 + dt.timedelta(seconds=59)) == []
    # rita reloads: she gets her own claim back with a fresh lease
    again = claim(sessions, "rita", now=T0 + dt.timedelta(seconds=30))
    assert [c.item_id for c in again] == [item]
    assert again[0].claim_expires_at == T0 + dt.timedelta(seconds=90)
    late = claim(sessions, "sam", now=T0 + dt.timedelta(seconds=90))
    assert [c.item_id for c in late] == [item]


def test_claim_arguments_are_checked(sessions):
    with sessions.begin() as s:
        for kwargs in ({"n": 0}, {"n": 101}, {"lease_s": 0}, {"reviewer": ""}):
            args = {"reviewer": "rita", "n": 1, "lease_s": 10, "now": T0, **kwargs}
            with pytest.raises(ValueError):
                service.claim_items(s, **args)


def test_review_rules(sessions):
    [item] = make_items(sessions, [(1.0, ReviewItemKind.QUEUE, "sexual", 0.5)])
    with pytest.raises(repo.UnknownReviewItem):
        review(sessions, 999_999, "rita")
    claim(sessions, "rita")
    with pytest.raises(service.ClaimConflict):
        review(sessions, item, "sam", now=T0 + dt.timedelta(seconds=10))
    for kwargs in (
        {"label": "other_category"},  # needs other_category
        {"label": "other_category", "other_category": "sexual"},  # same as reviewed
        {"label": "not_violation", "other_category": "violence"},  # only with other_category
        {"label": "bogus"},
        {"category": "violence"},  # not a category this item asks for
    ):
        with pytest.raises(service.InvalidReview):
            review(sessions, item, "rita", **kwargs)
    first = review(sessions, item, "rita", label="not_violation", note="fine")
    assert first.item_done and not first.replaced and first.banked is None
    # the same reviewer again replaces the vote (same row); another reviewer's is kept
    again = review(sessions, item, "rita", label="violation", now=T0 + dt.timedelta(seconds=5))
    assert again.replaced and again.review_id == first.review_id
    other = review(sessions, item, "sam", label="violation", now=T0 + dt.timedelta(seconds=99))
    assert not other.replaced and other.review_id != first.review_id
    with sessions() as s:
        rows = s.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.reviewer, r.label) for r in rows] == [
            ("rita", "violation"),
            ("sam", "violation"),
        ]
        assert rows[0].note is None and rows[0].created_at == T0 + dt.timedelta(seconds=5)
        done = s.get(ReviewItem, item)
        assert done.status == ReviewItemStatus.DONE and done.done_at == T0
        assert done.claim_expires_at is None
        log = s.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "review.record"))
        details = [e.details for e in log]
        assert [d["label"] for d in details] == ["not_violation", "violation", "violation"]
        assert details[1]["replaced"] == {"label": "not_violation", "other_category": None}
    assert [v.reviewer for v in _list(sessions, done_job(sessions, item))] == ["rita", "sam"]


def done_job(sessions, item_id):
    with sessions() as s:
        return s.get(ReviewItem, item_id).job_id


def _list(sessions, job_id):
    with sessions() as s:
        return repo.list_reviews(s, job_id=job_id)


def test_confirmed_violation_is_banked_and_missing_hash_is_not_an_error(sessions):
    [hashed] = make_items(sessions, [(1.0, ReviewItemKind.QUEUE, "sexual", 0.5)], pdq=PDQ)
    result = review(sessions, hashed, "rita")
    assert result.banked == "added" and result.bank_entry_id is not None
    with sessions() as s:
        entry = s.get(BankEntry, result.bank_entry_id)
        assert entry.category == "sexual" and entry.added_by == "rita"
    [plain] = make_items(sessions, [(1.0, ReviewItemKind.QUEUE, "violence", 0.5)])
    other = review(sessions, plain, "rita", label="other_category", other_category="sexual")
    assert other.banked == "no_hash" and other.item_done
    assert review(sessions, plain, "sam", label="not_violation").banked is None


def test_audited_categories_must_all_be_labelled_before_the_item_is_done(sessions):
    [item] = make_items(sessions, [(0.1, ReviewItemKind.AUDIT, "sexual", 0.1)])
    job_id = done_job(sessions, item)
    with sessions.begin() as s:
        for category in ("sexual", "violence"):
            s.add(AuditSample(job_id=job_id, category=category, stratum="near", score=0.1,
                              inclusion_probability=0.25))  # fmt: skip
    [claimed] = claim(sessions, "rita")
    assert claimed.review_categories == ("sexual", "violence")
    assert claimed.kind is ReviewItemKind.AUDIT and claimed.inclusion_probability == 0.25
    first = review(sessions, item, "rita", label="not_violation")
    assert not first.item_done and first.remaining_categories == ("violence",)
    second = review(sessions, item, "rita", label="not_violation", category="violence")
    assert second.item_done and second.remaining_categories == ()


def test_evidence_joins_queue_audits_and_reviews(sessions):
    q, a = ReviewItemKind.QUEUE, ReviewItemKind.AUDIT
    ids = make_items(sessions, [(1.0, q, "sexual", 0.9), (1.0, a, "sexual", 0.2),
                                (1.0, q, "violence", 0.8)])  # fmt: skip
    audited = done_job(sessions, ids[1])
    with sessions.begin() as s:
        s.add(AuditSample(job_id=audited, category="sexual", stratum="near", score=0.2,
                          inclusion_probability=0.25, sampled_at=T0))  # fmt: skip
    review(sessions, ids[0], "rita", label="not_violation")
    review(sessions, ids[1], "rita", label="violation")
    review(sessions, ids[1], "sam", label="violation")
    review(sessions, ids[2], "rita", label="violation")
    with sessions() as s:
        ev = repo.category_evidence(s, "sexual")
        assert repo.reviewed_categories(s) == ["sexual", "violence"]
    assert ev.n == 2 and ev.positives == 1
    by_id = dict(zip(ev.item_ids, zip(ev.score, ev.is_violation, ev.inclusion_probability,
                                      strict=True), strict=True))  # fmt: skip
    assert by_id[(done_job(sessions, ids[0]), "sexual")] == (0.9, False, 1.0)
    assert by_id[(audited, "sexual")] == (0.2, True, 0.25)


@pytest.mark.parametrize("reviewers", [8])
def test_concurrent_claims_on_postgres_never_hand_out_an_item_twice(pg_url, reviewers):
    engine = make_engine(pg_url, pool_size=reviewers)
    try:
        sessions = make_sessionmaker(engine)
        total = 120
        make_items(sessions, [(float(i % 7), ReviewItemKind.QUEUE, "sexual", 0.5)
                              for i in range(total)])  # fmt: skip
        got: dict[str, list[int]] = {}
        barrier = threading.Barrier(reviewers)
        errors: list[BaseException] = []

        def work(name: str) -> None:
            mine: list[int] = []
            try:
                barrier.wait()
                while True:
                    batch = claim(sessions, name, n=3, lease_s=600)
                    if not batch:
                        break
                    mine += [c.item_id for c in batch]
                    with sessions.begin() as s:  # finish them so the next claim moves on
                        for c in batch:
                            service.record_review(s, item_id=c.item_id, reviewer=name,
                                               label=ReviewLabel.NOT_VIOLATION, now=T0)  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)
            got[name] = mine

        threads = [threading.Thread(target=work, args=(f"r{i}",)) for i in range(reviewers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        claimed = Counter(i for ids in got.values() for i in ids)
        assert len(claimed) == total and set(claimed.values()) == {1}
        assert sum(1 for ids in got.values() if ids) > 1  # the work was shared
        with sessions() as s:
            assert set(s.scalars(select(ReviewItem.status))) == {ReviewItemStatus.DONE}
    finally:
        engine.dispose()


def test_skip_locked_lets_a_second_reviewer_past_a_claim_in_progress(pg_url):
    engine = make_engine(pg_url, pool_size=2)
    try:
        sessions = make_sessionmaker(engine)
        ids = make_items(sessions, [(2.0, ReviewItemKind.QUEUE, "sexual", 0.5),
                                    (1.0, ReviewItemKind.QUEUE, "sexual", 0.4)])  # fmt: skip
        with sessions.begin() as slow:  # first claim not yet committed: its row stays locked
            first = service.claim_items(slow, reviewer="rita", n=1, lease_s=60, now=T0)
            assert [c.item_id for c in first] == [ids[0]]
            second = claim(sessions, "sam", n=2)  # does not wait, does not get rita's item
            assert [c.item_id for c in second] == [ids[1]]
    finally:
        engine.dispose()


def test_confirmed_violation_is_banked_with_crop_windows_from_the_kept_bytes(sessions):
    import io

    from moderation.db.models import ImageBlob
    from tests.synthetic_images import synthetic_photo

    buffer = io.BytesIO()
    synthetic_photo(31, (320, 240)).save(buffer, format="PNG")
    [item] = make_items(sessions, [(1.0, ReviewItemKind.QUEUE, "sexual", 0.5)])
    with sessions.begin() as s:
        job = s.get(Job, s.get(ReviewItem, item).job_id)
        s.add(ImageBlob(image_id=job.image_id, data=buffer.getvalue()))
    banking = service.BankingOptions(min_quality=50, crop_grid=2, crop_keep=0.95)
    result = review(sessions, item, "rita", banking=banking)
    assert result.banked == "added"
    with sessions() as s:
        entry = s.get(BankEntry, result.bank_entry_id)
        assert entry.pdq_hash is not None and len(entry.crop_hashes) == 4 * 64
