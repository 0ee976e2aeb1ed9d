"""The review page in-process (TestClient): claim, show, decide, next; the image route."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Review, ReviewItem
from moderation.domain import ReviewItemStatus, ReviewLabel, RiskTier
from moderation.images import ImageRejected
from moderation.services.reviews import InvalidReview
from moderation.web.pages.review import image_media_type, parse_decisions, score_rows
from tests.dashboard_auth import DashboardClient, log_in
from tests.fakes import png_bytes
from tests.review_seed import ITEMS, NOW, seed_review_queue

RITA_SECRET = "rita-reviewer-secret-0000000000000000003"
SAM_SECRET = "sam-submitter-secret-0000000000000000004"
TOKENS = [f"rita:reviewer:{RITA_SECRET}", f"sam:submitter:{SAM_SECRET}"]


@pytest.fixture
def queue(db_url: str, tmp_path) -> tuple[str, dict[str, int]]:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            ids = seed_review_queue(session, tmp_path)
    finally:
        engine.dispose()
    return db_url, ids


@pytest.fixture
def client(queue, dashboard_factory) -> Callable[..., TestClient]:
    def make(**overrides: object) -> TestClient:
        return DashboardClient(dashboard_factory(queue[0], **overrides))

    return make


def reviews(db_url: str) -> list[tuple[int, str, str, str, str | None]]:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.execute(
                select(Review.review_item_id, Review.reviewer, Review.category, Review.label,
                       Review.other_category).order_by(Review.id)
            )  # fmt: skip
            return [(i, r, c, str(label), o) for i, r, c, label, o in rows]
    finally:
        engine.dispose()


def item_status(db_url: str, item_id: int) -> tuple[str, str | None]:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            item = s.get(ReviewItem, item_id)
            assert item is not None
            return str(item.status), item.claimed_by
    finally:
        engine.dispose()


def test_score_rows_put_the_highest_first_and_mark_asked_categories():
    rows = score_rows(ITEMS["extreme"][4], ["weapons"])
    assert [(r.category, r.asked) for r in rows] == [("weapons", True), ("sexual", False)]
    assert rows[0].phrasing == "a photo of a handgun pointed at the camera"


def test_parse_decisions():
    form = {"label:weapons": "other_category", "other:weapons": "sexual", "label:x": "nope"}
    (d,) = parse_decisions(form, ["weapons"])
    assert (d.category, d.label, d.other_category) == (
        "weapons",
        ReviewLabel.OTHER_CATEGORY,
        "sexual",
    )
    (d,) = parse_decisions({"label:weapons": "violation", "other:weapons": "sexual"}, ["weapons"])
    assert d.other_category is None  # the select always posts a value; only "other" uses it
    with pytest.raises(InvalidReview, match="unknown label"):
        parse_decisions({"label:weapons": "maybe"}, ["weapons"])
    with pytest.raises(InvalidReview, match="at least one"):
        parse_decisions({"label:other": "violation"}, ["weapons"])


def test_media_type_comes_from_the_decoded_format():
    assert image_media_type(png_bytes()) == "image/png"
    assert image_media_type(ITEMS["extreme"][0]) == "image/jpeg"
    with pytest.raises(ImageRejected):
        image_media_type(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>")


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_work_the_queue_highest_priority_first(queue, client):
    db_url, ids = queue
    web = client()
    start = web.get("/review")  # a GET claims nothing: it offers a button that does
    assert start.status_code == 200 and 'action="/review/claim"' in start.text
    assert 'id="queue-empty"' not in start.text
    item = ids["extreme"]
    assert item_status(db_url, item) == ("open", None)
    claimed = web.post("/review/claim", follow_redirects=False)
    assert claimed.status_code == 303 and claimed.headers["location"] == "/review"
    page = web.get("/review")
    assert page.status_code == 200
    html = page.text
    assert f'action="/review/items/{item}"' in html
    assert re.search(r'<img id="review-image"[^>]*class="blurred"', html)
    assert "a photo of a handgun pointed at the camera" in html
    assert html.index('id="score-weapons"') < html.index('id="score-sexual"')
    assert 'name="label:weapons"' in html and 'data-key="v"' in html
    assert '<a href="/review" aria-current="page">Review</a>' in html
    assert item_status(db_url, item) == ("claimed", "local")
    # a reload gets the same claim back
    assert f'action="/review/items/{item}"' in web.get("/review").text

    r = web.post(f"/review/items/{item}", data={"label:weapons": "violation", "note": " ok "},
                 follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/review"
    assert reviews(db_url) == [(item, "local", "weapons", "violation", None)]
    assert item_status(db_url, item)[0] == ReviewItemStatus.DONE

    nxt = web.get("/review").text  # next, claimed by the submit: the high sexual item, blurred
    assert f'action="/review/items/{ids["high"]}"' in nxt and 'class="blurred"' in nxt
    web.post(f"/review/items/{ids['high']}",
             data={"label:sexual": "other_category", "other:sexual": "weapons"})  # fmt: skip
    last = web.get("/review").text  # the medium item: not blurred
    assert f'action="/review/items/{ids["medium"]}"' in last
    assert not re.search(r'<img id="review-image"[^>]*class="blurred"', last)
    done = web.post(f"/review/items/{ids['medium']}", data={"label:weapons": "not_violation"},
                    follow_redirects=False)  # fmt: skip
    assert done.headers["location"] == "/review?empty=1"
    assert 'id="queue-empty"' in web.get(done.headers["location"]).text
    assert [r[3:] for r in reviews(db_url)][1:] == [("other_category", "weapons"),
                                                     ("not_violation", None)]  # fmt: skip


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_reviewer_is_the_logged_in_token_and_others_claims_are_refused(queue, client):
    db_url, ids = queue
    web = client(api_tokens=TOKENS)
    login_page = web.get("/review", follow_redirects=False)
    assert login_page.status_code == 303 and login_page.headers["location"].startswith("/login")
    refused = log_in(web, SAM_SECRET)
    assert refused.status_code == 403 and "only reviewer and admin" in refused.text
    assert log_in(web, RITA_SECRET).status_code == 303
    web.post("/review/claim")
    assert f'/review/items/{ids["extreme"]}"' in web.get("/review").text
    assert item_status(db_url, ids["extreme"]) == ("claimed", "rita")
    # someone else (the open dashboard's "local") may not decide rita's live claim
    other = client()
    r = other.post(f"/review/items/{ids['extreme']}", data={"label:weapons": "violation"})
    assert r.status_code == 409 and "claimed by rita" in r.text
    r = web.post(f"/review/items/{ids['extreme']}", data={"label:weapons": "violation"},
                 follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert reviews(db_url)[-1][:2] == (ids["extreme"], "rita")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_submissions_answer_with_reasons(queue, client):
    db_url, ids = queue
    web = client()
    web.post("/review/claim")
    item = ids["extreme"]
    assert web.post("/review/items/999999", data={"label:weapons": "violation"}).status_code == 404
    r = web.post(f"/review/items/{item}", data={"note": "forgot the label"})
    assert r.status_code == 422 and "at least one category" in r.text
    r = web.post(f"/review/items/{item}", data={"label:weapons": "other_category"})
    assert r.status_code == 422 and "other_category" in r.text
    cross_site = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    r = web.post(f"/review/items/{item}", data={"label:weapons": "violation"}, headers=cross_site)
    assert r.status_code == 403
    r = web.post(f"/review/items/{item}", data={"label:weapons": "violation", "note": "x" * 70000})
    assert r.status_code == 413
    assert reviews(db_url) == []


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_image_route_serves_only_images_with_their_real_type(queue, client):
    _, ids = queue
    web = client()
    r = web.get(f"/review/items/{ids['extreme']}/image")
    assert r.status_code == 200 and r.content == ITEMS["extreme"][0]
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "private, no-store"
    assert web.get(f"/review/items/{ids['high']}/image").headers["content-type"] == "image/png"
    stored = web.get(f"/review/items/{ids['file']}/image")  # file:// storage_uri (scan)
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/png"
    assert web.get(f"/review/items/{ids['html']}/image").status_code == 415
    assert web.get(f"/review/items/{ids['missing']}/image").status_code == 404
    assert web.get("/review/items/424242/image").status_code == 404
    assert (
        client(max_upload_bytes=1024).get(f"/review/items/{ids['extreme']}/image").status_code
        == 413
    )


def test_seed_times_are_pinned():
    assert NOW.tzinfo is not None and RiskTier.EXTREME.rank == 4


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_each_score_shows_its_confidence_level(queue, client):
    from moderation.db.models import Score
    from moderation.domain import ScoreSource
    from tests.review_seed import _job

    db_url, _ = queue
    web = client()
    web.post("/review/claim")
    html = web.get("/review").text
    row = re.search(r'<tr id="score-weapons".*?</tr>', html, re.S)
    assert row and '<td class="confidence">—</td>' in row.group(0)  # too few observed scores
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            for i in range(30):  # observed weapons scores well below the queued item's
                job = _job(s, png_bytes((i, 1, 2)))
                s.add(Score(job_id=job.id, category="weapons", score=0.01 * i / 30,
                            source=ScoreSource.EMBEDDING, tier=RiskTier.CLEAR))  # fmt: skip
    finally:
        engine.dispose()
    html = web.get("/review").text  # the same claim, shown again
    row = re.search(r'<tr id="score-weapons".*?</tr>', html, re.S)
    assert row and '<td class="confidence">high</td>' in row.group(0)
    assert "<th title=" in html and ">confidence</th>" in html
