"""Issue 15's audit of the HTTP API: each finding, through the real app on PostgreSQL (and
SQLite where the finding is not about PostgreSQL), with the real Redis publisher.

Every hostile request gets a 4xx with a short body, never a 5xx, and its body never reaches
the log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from moderation.db.models import BankEntry, Decision, Job
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import BankKind, ReviewItemKind, RiskTier
from moderation.hashbank.banks import bank_hash
from moderation.hashbank.hashing import PdqHash
from tests.fakes import png_bytes
from tests.moderation.conftest import TOKENS
from tests.moderation.db.repositories.test_reviews import PDQ, make_items

IMG = base64.b64encode(png_bytes((10, 200, 10))).decode()
TOO_BIG_ID = 2**63
JSON = {"content-type": "application/json"}


def job_count(api) -> int:
    engine = make_engine(api.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            return int(s.scalar(select(func.count()).select_from(Job)) or 0)
    finally:
        engine.dispose()


def details(r) -> str:
    return json.dumps(r.json()["detail"])


# --- malformed bodies: 400/422 with a short message, nothing in the log ----------------


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/batch"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"image_base64": "' + b"A" * 500_000 + b"MARKER",  # truncated JSON
        b"\xff\xfe MARKER not UTF-8",
        b'{"image_base64": "", "external_id": "\\ud800 MARKER"}',  # a lone surrogate
        b'{"jobs": [{"image_base64": "\\ud800MARKER"}]}',
    ],
    ids=["truncated", "not-utf8", "lone-surrogate", "lone-surrogate-batch"],
)
def test_malformed_json_is_a_400_and_never_logged(api, caplog, path, body):
    caplog.set_level(logging.DEBUG)
    r = api.client.post(path, content=body, headers={**api.headers("alice"), **JSON})
    assert r.status_code == 400, r.text[:300]
    assert "MARKER" not in r.text and len(r.content) < 300
    assert "MARKER" not in caplog.text
    assert job_count(api) == 0


def test_a_schema_error_is_a_422_list_without_the_input(api, caplog):
    caplog.set_level(logging.DEBUG)
    body = {"image_base64": "A" * 100_000 + "MARKER=", "external_id": 7}
    r = api.client.post("/v1/jobs", json=body, headers=api.headers("alice"))
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list) and "MARKER" not in r.text
    assert {tuple(e["loc"]) for e in r.json()["detail"]} >= {("body", "external_id")}
    assert "MARKER" not in caplog.text


def test_a_multipart_field_sent_as_a_file_is_a_422(api):
    files = {"file": ("a.png", png_bytes((1, 2, 3))), "external_id": ("x.txt", b"up-1")}
    r = api.client.post("/v1/jobs", files=files, headers=api.headers("alice"))
    assert r.status_code == 422 and "external_id" in details(r)
    assert job_count(api) == 0


# --- limits enforced while parsing; authentication before the body ---------------------


def test_the_item_count_is_refused_before_the_body_is_decoded(api_factory):
    """One object past the limit and then garbage: the count answers (413), not the JSON
    decoder (which would have had to read it all and say 400)."""
    api = api_factory(max_batch_jobs=4)
    h = {**api.headers("alice"), **JSON}
    item = b'{"image_base64": ""}'
    r = api.client.post(
        "/v1/jobs/batch", content=b'{"jobs": [' + item * 100 + b"GARBAGE", headers=h
    )
    assert r.status_code == 413 and "at most 4" in r.text
    body = b'{"jobs": [' + b",".join([item] * 5) + b"]}"
    assert api.client.post("/v1/jobs/batch", content=body, headers=h).status_code == 413
    ok = json.dumps({"jobs": [{"image_base64": IMG, "context": {"criticality": "high"}}] * 4})
    assert api.client.post("/v1/jobs/batch", content=ok, headers=h).status_code == 202
    assert job_count(api) == 4


def _pull_count(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes] | None = None
) -> tuple[int, int]:
    """Send ``path`` a streamed body (``chunks``, default 64 × 64 KiB) straight through ASGI;
    (status, chunks the app pulled)."""
    chunks = chunks or [b"x" * 65536] * 64
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        more = pulled < len(chunks)
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80), "app": app,
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], pulled


def test_a_body_of_too_many_items_is_refused_while_it_is_received(api):
    """2.5 M items in 64 KiB chunks: the 413 comes after the first chunk, not after 50 MB."""
    body = b'{"jobs": [' + b",".join([b'{"image_base64":""}'] * 2_500_000) + b"]}"
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    headers = [(b"content-type", b"application/json"),
               (b"authorization", f"Bearer {TOKENS['alice']}".encode())]  # fmt: skip
    status, pulled = _pull_count(api.client.app, "/v1/jobs/batch", headers, chunks)
    assert status == 413 and pulled == 1 and len(chunks) > 700


@pytest.mark.parametrize("path", ["/v1/reviews", "/v1/jobs", "/v1/jobs/batch"])
@pytest.mark.parametrize("token", [None, "wrong-token", "alice"])
def test_no_body_is_read_before_the_token_and_role_are_checked(api, path, token):
    headers = [(b"content-type", b"application/json")]
    if token:
        secret = TOKENS.get(token, token)
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    status, pulled = _pull_count(api.client.app, path, headers)
    if token == "alice" and path != "/v1/reviews":
        assert status == 400  # a submitter may submit: the (non-JSON) body is read
        return
    assert status == (403 if token == "alice" else 401)
    assert pulled == 0


def test_a_review_body_over_64_kib_is_a_413(api):
    body = {"item_id": 1, "label": "violation", "note": "n" * 200_000}
    r = api.client.post("/v1/reviews", json=body, headers=api.headers("rita"))
    assert r.status_code == 413


# --- categories against the catalog ----------------------------------------------------


@pytest.fixture
def review_items(api) -> list[int]:
    engine = make_engine(api.settings.database_url)
    try:
        q = ReviewItemKind.QUEUE
        return make_items(make_sessionmaker(engine), [(3.0, q, "sexual", 0.9)], pdq=PDQ)
    finally:
        engine.dispose()


def test_a_reviewer_cannot_bank_an_image_under_a_made_up_category(api, review_items):
    h = api.headers("rita")
    body = {"item_id": review_items[0], "label": "other_category", "other_category": "lol"}
    r = api.client.post("/v1/reviews", json=body, headers=h)
    assert r.status_code == 422 and "not a category of the catalog" in details(r)
    engine = make_engine(api.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            assert s.scalar(select(func.count()).select_from(BankEntry)) == 0
    finally:
        engine.dispose()
    body["other_category"] = "weapons"  # a catalog category is banked
    r = api.client.post("/v1/reviews", json=body, headers=h)
    assert r.status_code == 201 and r.json()["banked"] == "added", r.text


# --- tenant isolation ------------------------------------------------------------------


def test_a_submitter_sees_a_bank_match_but_not_whose_job_or_which_reviewer(api_factory, db_url):
    api = api_factory(database_url=db_url)
    bob = api.client.post("/v1/jobs", json={"image_base64": IMG}, headers=api.headers("bob"))
    bobs_job = bob.json()["id"]
    alice = api.client.post("/v1/jobs", json={"image_base64": IMG}, headers=api.headers("alice"))
    alices_job = alice.json()["id"]
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            entry = bank_hash(
                s, bank=BankKind.CONFIRMED_VIOLATION, pdq=PdqHash.from_hex(PDQ, 90),
                added_by="rev1", category="sexual", source_job_id=bobs_job,
                reason=f"confirmed by rev1 on job {bobs_job}",
            ).entry  # fmt: skip
            assert entry is not None
            s.add(Decision(job_id=alices_job, tier=RiskTier.HIGH, action="block",
                           category="sexual", policy="default", threshold_versions={},
                           matched_bank_entry_id=entry.id, match_distance=4))  # fmt: skip
    finally:
        engine.dispose()
    for r in (
        api.client.get(f"/v1/jobs/{alices_job}", headers=api.headers("alice")),
        api.client.get("/v1/jobs", headers=api.headers("alice")),
    ):
        assert r.status_code == 200
        text = r.text
        assert "rev1" not in text and f"job {bobs_job}" not in text
    match = api.client.get(f"/v1/jobs/{alices_job}", headers=api.headers("alice")).json()
    assert match["bank_match"]["category"] == "sexual" and match["bank_match"]["reason"] is None
    assert match["bank_match"]["bank"] == "confirmed_violation"
    # reviewers still see why it matched
    full = api.client.get(f"/v1/jobs/{alices_job}", headers=api.headers("rita")).json()
    assert full["bank_match"]["reason"] == f"confirmed by rev1 on job {bobs_job}"


# --- client errors, not 5xx ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"/v1/jobs/{TOO_BIG_ID}", None),
        ("get", f"/v1/jobs?after_id={TOO_BIG_ID}", None),
        ("post", f"/v1/jobs/{TOO_BIG_ID}/retry", None),
        ("get", f"/v1/reviews?job_id={TOO_BIG_ID}", None),
        ("post", "/v1/reviews", {"item_id": TOO_BIG_ID, "label": "violation"}),
        ("post", "/v1/reviews", {"item_id": 1, "label": "violation", "note": "a\x00b"}),
        ("post", "/v1/reviews", {"item_id": 1, "label": "violation", "category": "\x00"}),
        ("post", "/v1/jobs", {"image_base64": IMG, "external_id": "a\x00b"}),
        ("post", "/v1/jobs", {"image_base64": IMG, "match_text": "red\x00"}),
        ("get", "/v1/jobs?since=0001-01-01T00:00:00%2B14:00", None),
        ("get", "/v1/jobs?since=9999-12-31T23:59:59-14:00", None),
        ("get", "/v1/jobs?since=1700000000", None),
    ],
)
def test_out_of_range_ids_nul_characters_and_datetimes_are_422(api_factory, db_url, method,
                                                               path, body):  # fmt: skip
    api = api_factory(database_url=db_url)
    kwargs = {"json": body} if body is not None else {}
    r = getattr(api.client, method)(path, headers=api.headers("adam"), **kwargs)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], list)


def test_a_nul_in_a_multipart_field_is_a_422(api):
    r = api.client.post(
        "/v1/jobs",
        files={"file": ("a.png", png_bytes((3, 3, 3)))},
        data={"external_id": "a\x00b"},
        headers=api.headers("alice"),
    )
    assert r.status_code == 422 and job_count(api) == 0


def test_the_single_job_endpoint_takes_one_file(api):
    files = [("file", (f"{i}.png", png_bytes((i, 9, 9)), "image/png")) for i in range(3)]
    r = api.client.post("/v1/jobs", files=files, headers=api.headers("alice"))
    assert r.status_code == 422 and "batch" in details(r)
    assert job_count(api) == 0


# --- the spec --------------------------------------------------------------------------


def test_get_on_a_post_only_path_is_405_with_allow(api):
    r = api.client.get("/v1/jobs/batch", headers=api.headers("alice"))
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = api.client.delete("/v1/jobs", headers=api.headers("alice"))
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


def test_every_ref_resolves_and_every_status_is_documented(api):
    doc = api.client.get("/openapi.json").json()

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    for key, op in ops.items():
        if op.get("security"):
            assert {"401", "403", "503"} <= set(op["responses"]), key
    assert {"400", "413", "415", "422"} <= set(ops["POST", "/v1/jobs"]["responses"])
    assert {"400", "413", "415", "422"} <= set(ops["POST", "/v1/jobs/batch"]["responses"])
    assert {"404", "409", "413", "415"} <= set(ops["POST", "/v1/reviews"]["responses"])
    assert "404" in ops["GET", "/v1/jobs/{job_id}"]["responses"]
    assert "409" in ops["POST", "/v1/jobs/{job_id}/retry"]["responses"]
    # every 422 is declared as (and answered in) one list-of-errors shape
    for op in ops.values():
        if "422" in op["responses"]:
            schema = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ValidationErrorOut"}


def test_a_review_422_detail_is_a_list_like_the_spec_says(api, review_items):
    body = {"item_id": review_items[0], "label": "violation", "category": "weapons"}
    r = api.client.post("/v1/reviews", json=body, headers=api.headers("rita"))
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body"] and "weapons" in error["msg"]
