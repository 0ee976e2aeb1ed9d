"""POST /v1/admin/thresholds/calibrate: uploaded labels → the CLI's calibration service; a dry
run by default, apply=true writes versions through the one writer (audit-logged), bad lines
are 422 with their numbers, hostile input 4xx (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest

from moderation.api.routes import admin_thresholds
from tests.moderation.api.routes.test_admin import _audit

URL = "/v1/admin/thresholds/calibrate"
# precision_target p=0.75 on these: descending 0.8 v, 0.7 v, 0.6 v, 0.55 n, 0.5 v, 0.3 n, …
# precision at 0.5 is 4/5 = 0.8 (the lowest reaching 0.75; at 0.3 it is 4/6); recall 1
VIOLATIONS = (0.5, 0.6, 0.7, 0.8)
CLEAR = (0.1, 0.2, 0.3, 0.55)
CSV = "category,is_violation,score\n" + "".join(
    f"weapons,{int(y)},{s}\n"
    for s, y in [(s, True) for s in VIOLATIONS] + [(s, False) for s in CLEAR]
)


def test_dry_run_proposes_and_apply_writes_an_audited_version(api_factory, db_url):
    api = api_factory(database_url=db_url)
    admin = api.headers("adam")
    query = "?strategy=precision_target&precision=0.75&scale=gme_cosine"
    r = api.client.post(URL + query, content=CSV, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["strategy"], body["params"], body["written"]) == (
        "precision_target", {"precision": 0.75}, False
    )  # fmt: skip
    (weapons,) = body["categories"]
    assert (weapons["n"], weapons["positives"], weapons["threshold"]) == (8, 4, 0.5)
    assert (weapons["precision"], weapons["recall"], weapons["fpr"]) == (0.8, 1.0, 0.25)
    assert weapons["cutoffs"]["medium"] == 0.5 and weapons["version_id"] is None
    assert api.client.get("/v1/admin/thresholds", headers=admin).json() == []  # nothing written

    jsonl = "".join(
        json.dumps({"category": "weapons", "label": y, "score": s}) + "\n"
        for s, y in [(s, True) for s in VIOLATIONS] + [(s, False) for s in CLEAR]
    )
    r = api.client.post(URL + query + "&apply=true&reason=q4", content=jsonl, headers=admin)
    assert r.status_code == 201, r.text
    version_id = r.json()["categories"][0]["version_id"]
    (active,) = api.client.get("/v1/admin/thresholds", headers=admin).json()
    assert (active["id"], active["value"], active["strategy"], active["reason"]) == (
        version_id, 0.5, "precision_target", "q4"
    )  # fmt: skip
    assert active["created_by"] == "api:adam" and active["scale"] == "gme_cosine"
    assert _audit(db_url)[-1] == ("api:adam", "thresholds.calibrate", str(version_id))

    # the scale of given scores defaults to the category's active version's
    r = api.client.post(URL + "?strategy=precision_target&precision=0.75", content=CSV,
                        headers=admin)  # fmt: skip
    assert r.status_code == 200 and r.json()["categories"][0]["previous_version_id"] == version_id


def test_bad_lines_are_422_with_their_numbers_and_nothing_is_calibrated(api):
    admin = api.headers("adam")
    bad = (
        "category,is_violation,score,path,job_id\n"
        "weapons,1,0.5,,\n"
        "made_up,1,0.5,,\n"  # line 3: not in the catalog
        "weapons,maybe,0.5,,\n"  # 4: label
        "weapons,1,nan,,\n"  # 5: not finite
        "weapons,1,,/etc/passwd,\n"  # 6: no file is read
        "weapons,1,,,-3\n"  # 7: not an id
    )
    r = api.client.post(URL, content=bad, headers=admin)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", n] for n in (3, 4, 5, 6, 7)]
    assert "not in the catalog" in detail[0]["msg"] and "not accepted" in detail[3]["msg"]
    r = api.client.post(
        URL + "?format=jsonl", content='{"category": "weapons"}\n[1]\n{', headers=admin
    )
    assert r.status_code == 422 and [d["loc"][1] for d in r.json()["detail"]] == [1, 2, 3]
    assert api.client.get("/v1/admin/thresholds", headers=admin).json() == []


def test_hostile_and_unusable_uploads_get_4xx(api, monkeypatch):
    admin = api.headers("adam")
    post = api.client.post
    assert post(URL, content=b"category,is_violation\n\xff", headers=admin).status_code == 400
    assert post(URL, content=b"category,score\x00\n", headers=admin).status_code == 400
    r = post(URL, content="a,b\n1,2\n", headers=admin)
    assert r.status_code == 422 and "header needs" in r.json()["detail"][0]["msg"]
    assert post(URL, content="category,is_violation,score\n", headers=admin).status_code == 422
    assert post(URL + "?recall=2", content=CSV, headers=admin).status_code == 422
    assert post(URL + "?strategy=magic", content=CSV, headers=admin).status_code == 422
    # no active version and no scale for given scores: the message says to pass one
    r = post(URL, content=CSV, headers=admin)
    assert r.status_code == 422 and "pass scale" in r.json()["detail"][0]["msg"]
    # recall_target with 4 violations: dry run shows why; apply writes nothing, 422
    r = post(URL + "?scale=gme_cosine", content=CSV, headers=admin)
    assert r.status_code == 200 and "labelled violations" in r.json()["categories"][0]["error"]
    r = post(URL + "?scale=gme_cosine&apply=true", content=CSV, headers=admin)
    assert r.status_code == 422 and "nothing written" in r.json()["detail"][0]["msg"]
    assert api.client.get("/v1/admin/thresholds", headers=admin).json() == []
    monkeypatch.setattr(admin_thresholds, "MAX_LABEL_ROWS", 3)
    assert post(URL, content=CSV, headers=admin).status_code == 413
    monkeypatch.setattr(admin_thresholds, "MAX_LABELS_BYTES", 100)
    assert post(URL, content=CSV, headers=admin).status_code == 413


@pytest.mark.parametrize("who", ["alice", "rita"])
def test_only_admins(api, who):
    assert api.client.post(URL, content=CSV).status_code == 401
    assert api.client.post(URL, content=CSV, headers=api.headers(who)).status_code == 403


def test_decided_appeals_join_as_labels_of_their_own_weight(api_factory):
    """An overturned flag (sexual score 0.83 → clear) is a non-violation label weighted
    MODERATION_APPEAL_EVIDENCE_WEIGHT = 0.5: precision_target 0.75 moves from 0.5 (4 / 5) to
    0.6 (3 / 3.5 = 6/7; at 0.5 it would be 4 / 5.5); the adjuster's evidence never sees it."""
    import base64

    from moderation.db import make_engine, make_sessionmaker
    from moderation.db.repositories.reviews import evidence_records
    from moderation.db.session import session_scope
    from tests.fakes import png_bytes
    from tests.moderation.api.routes.test_appeals import _decide

    api = api_factory()
    body = {"image_base64": base64.b64encode(png_bytes((1, 2, 3))).decode()}
    job_id = api.client.post("/v1/jobs", json=body, headers=api.headers("alice")).json()["id"]
    _decide(api.settings.database_url, job_id, reviewer=None)
    r = api.client.post(
        f"/v1/jobs/{job_id}/appeal", json={"reason": "a statue"}, headers=api.headers("alice")
    )
    appeal_id = r.json()["id"]
    rita = api.headers("rita")
    assert api.client.post(f"/v1/appeals/{appeal_id}/claim", headers=rita).status_code == 200
    overturn = {"outcome": "overturned", "tier": "clear"}
    assert api.client.post(f"/v1/appeals/{appeal_id}/decide", json=overturn,
                           headers=rita).status_code == 200  # fmt: skip

    admin = api.headers("adam")
    labels = CSV.replace("weapons", "sexual")
    query = URL + "?strategy=precision_target&precision=0.75&scale=gme_cosine"
    (without,) = api.client.post(query, content=labels, headers=admin).json()["categories"]
    assert (without["threshold"], without["n"], without["appeals"]) == (0.5, 8, 0)
    r = api.client.post(query + "&appeals=true", content=labels, headers=admin)
    assert r.status_code == 200, r.text
    (sexual,) = r.json()["categories"]
    assert (sexual["threshold"], sexual["n"], sexual["positives"], sexual["appeals"]) == (
        0.6, 9, 4, 1
    )  # fmt: skip
    assert sexual["precision"] == pytest.approx(6 / 7, abs=1e-12)
    assert (sexual["recall"], sexual["fpr"]) == (0.75, pytest.approx(1 / 9, abs=1e-12))
    # a job the labels name already is not counted twice
    named = (
        "category,is_violation,score,job_id\n"
        + "".join(f"{line},\n" for line in labels.splitlines()[1:])
        + f"sexual,0,,{job_id}\n"
    )
    (once,) = api.client.post(query + "&appeals=true", content=named, headers=admin).json()[
        "categories"
    ]
    assert (once["n"], once["appeals"]) == (9, 0)
    engine = make_engine(api.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            assert evidence_records(s, "sexual")[0] == []  # never an audit
    finally:
        engine.dispose()
