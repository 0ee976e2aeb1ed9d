"""``/v1/review-queue`` and ``/v1/reviews`` through the real app and Postgres."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from moderation.db.session import make_engine, make_sessionmaker
from moderation.domain import ReviewItemKind
from tests.moderation.db.repositories.test_reviews import make_items


@pytest.fixture
def items(api) -> Iterator[list[int]]:
    engine = make_engine(api.settings.database_url)
    try:
        q = ReviewItemKind.QUEUE
        yield make_items(make_sessionmaker(engine), [(3.0, q, "sexual", 0.9),
                                                     (1.0, q, "violence", 0.5)])  # fmt: skip
    finally:
        engine.dispose()


def test_roles(api, items):
    for method, path, body in (
        ("get", "/v1/review-queue/next", None),
        ("post", "/v1/reviews", {"item_id": items[0], "label": "violation"}),
        ("get", f"/v1/reviews?job_id={items[0]}", None),
    ):
        kwargs = {"json": body} if body else {}
        call = getattr(api.client, method)
        assert call(path, **kwargs).status_code == 401
        assert call(path, headers={"Authorization": "Bearer nope"}, **kwargs).status_code == 401
        assert call(path, headers=api.headers("alice"), **kwargs).status_code == 403
    assert api.client.get("/v1/review-queue/next", headers=api.headers("adam")).status_code == 200


def test_claim_review_conflict_and_listing(api, items):
    r = api.client.get("/v1/review-queue/next?n=1", headers=api.headers("rita"))
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert item["item_id"] == items[0] and item["review_categories"] == ["sexual"]
    assert item["scores"]["sexual"] == {"score": 0.9, "phrasing": "p", "tier": "high"}
    # the admin may not post over rita's live claim
    body = {"item_id": items[0], "label": "not_violation"}
    r = api.client.post("/v1/reviews", json=body, headers=api.headers("adam"))
    assert r.status_code == 409 and "rita" in r.json()["detail"]
    r = api.client.post("/v1/reviews", json={**body, "note": "ok"}, headers=api.headers("rita"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["item_done"] and not out["replaced"] and out["banked"] is None
    # after it is done, a second opinion is kept
    r = api.client.post("/v1/reviews", json=body, headers=api.headers("adam"))
    assert r.status_code == 201
    job_id = out["job_id"]
    listed = api.client.get(f"/v1/reviews?job_id={job_id}", headers=api.headers("rita")).json()
    assert [(v["reviewer"], v["label"]) for v in listed["reviews"]] == [
        ("rita", "not_violation"),
        ("adam", "not_violation"),
    ]
    # the other item is next
    r = api.client.get("/v1/review-queue/next?n=5", headers=api.headers("rita"))
    assert [i["item_id"] for i in r.json()["items"]] == [items[1]]


@pytest.mark.parametrize(
    "body",
    [
        {"label": "violation"},  # no item
        {"item_id": 1, "label": "maybe"},
        {"item_id": 1, "label": "other_category"},  # needs other_category
        {"item_id": 1, "label": "violation", "other_category": "sexual"},
        {"item_id": 1, "label": "violation", "surprise": True},
        {"item_id": 0, "label": "violation"},
    ],
)
def test_bad_bodies_are_422(api, items, body):
    r = api.client.post("/v1/reviews", json=body, headers=api.headers("rita"))
    assert r.status_code == 422, r.text


def test_unknown_item_is_404_and_wrong_category_422(api, items):
    h = api.headers("rita")
    body = {"item_id": 987654, "label": "violation"}
    assert api.client.post("/v1/reviews", json=body, headers=h).status_code == 404
    body = {"item_id": items[0], "label": "violation", "category": "weapons"}
    r = api.client.post("/v1/reviews", json=body, headers=h)
    assert r.status_code == 422 and "weapons" in r.json()["detail"][0]["msg"]
    assert api.client.get("/v1/review-queue/next?n=0", headers=h).status_code == 422


def test_an_audit_item_past_its_max_wait_is_handed_out_first(api, items):
    engine = make_engine(api.settings.database_url)
    try:  # made weeks ago (T0), far past the default hour; lowest priority
        [audit] = make_items(
            make_sessionmaker(engine), [(0.1, ReviewItemKind.AUDIT, "sexual", 0.1)]
        )
    finally:
        engine.dispose()
    assert api.settings.review_audit_max_wait_s == 3600
    r = api.client.get("/v1/review-queue/next?n=2", headers=api.headers("rita"))
    assert [i["item_id"] for i in r.json()["items"]] == [audit, items[0]]
    assert r.json()["items"][0]["kind"] == "audit"
