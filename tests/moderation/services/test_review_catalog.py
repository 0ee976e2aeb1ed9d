"""``services.reviews.record_review`` checks a typed category against the catalog, so the
API, the dashboard and any later entry point refuse a made-up one (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from moderation.db import make_sessionmaker
from moderation.db.models import BankEntry, Review
from moderation.domain import ReviewItemKind
from moderation.services import reviews as service
from tests.moderation.db.repositories.test_reviews import PDQ, T0, make_items


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def record(sessions, item_id, **kw):
    with sessions.begin() as s:
        return service.record_review(s, item_id=item_id, reviewer="rita", now=T0, **kw)


def counts(sessions) -> tuple[int, int]:
    with sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Review)),
            s.scalar(select(func.count()).select_from(BankEntry)),
        )


def test_other_category_must_be_a_catalog_category(sessions):
    [item] = make_items(sessions, [(1.0, ReviewItemKind.QUEUE, "sexual", 0.9)], pdq=PDQ)
    with pytest.raises(service.InvalidReview, match="not a category of the catalog"):
        record(sessions, item, label="other_category", other_category="anything-goes")
    assert counts(sessions) == (0, 0)  # nothing stored, nothing banked
    result = record(sessions, item, label="other_category", other_category="weapons")
    assert result.banked == "added" and counts(sessions) == (1, 1)


def test_the_catalog_is_the_configured_one(sessions, settings_factory, tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "name: tiny\ncategories:\n"
        "  sexual: {severity: 3, phrasings: [nudity, a nude, sex, porn]}\n"
        "  gore: {severity: 4, phrasings: [gore, blood, a wound, a corpse]}\n"
    )
    banking = service.BankingOptions.from_settings(settings_factory(catalog_file=catalog))
    assert banking.categories == {"sexual", "gore"}
    [item] = make_items(sessions, [(1.0, ReviewItemKind.QUEUE, "sexual", 0.9)], pdq=PDQ)
    with pytest.raises(service.InvalidReview, match="weapons"):  # packaged, not configured
        record(sessions, item, label="other_category", other_category="weapons",
               banking=banking)  # fmt: skip
    assert record(sessions, item, label="other_category", other_category="gore",
                  banking=banking).banked == "added"  # fmt: skip
