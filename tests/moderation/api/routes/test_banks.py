"""The admin bank API (real Postgres, real Redis): import/export round trip, line-numbered
errors, admin only, enable/disable with a queued retro-matching run, hostile input → 4xx."""

from __future__ import annotations

H1, H2 = "a" * 64, "0123456789abcdef" * 4
CSV = (
    "hash,quality,bank,category,tags,source,added_at\n"
    f"{H1},90,confirmed_violation,sexual,t1;t2,list-a,2026-11-01T10:00:00+00:00\n"
    f"{H2},80,benign,,,list-b,2026-11-02T10:00:00+00:00\n"
)


def test_import_then_export_round_trips_and_queues_one_retro_run(api):
    admin = api.headers("adam")
    bad = CSV + "nothex,1,benign,,,x,\n"
    r = api.client.post("/v1/banks/import?name=list.csv", content=bad, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["added"], body["duplicates"]) == (2, 0)
    assert [e["line"] for e in body["errors"]] == [4]
    assert body["retro_run"]["status"] == "pending"  # queued for a worker (one run)
    queued = sum(
        int(api.redis.llen(k))
        for k in api.redis.scan_iter(
            f"{api.settings.broker_key_prefix}{api.settings.ops_queue_name}*"
        )
    )
    assert queued == 1
    exported = api.client.get("/v1/banks/export", headers=admin)
    assert exported.status_code == 200 and exported.text == CSV
    jsonl = api.client.get("/v1/banks/export?format=jsonl", headers=admin).text
    again = api.client.post(
        "/v1/banks/import?name=x.jsonl&retro=false", content=jsonl, headers=admin
    ).json()
    assert (again["added"], again["duplicates"], again["retro_run"]) == (0, 2, None)
    runs = api.client.get("/v1/banks/retro-runs", headers=admin).json()
    assert [r["trigger"] for r in runs] == ["import:list.csv"]


def test_only_admins_and_hostile_input_gets_4xx(api):
    for who in ("alice", "rita"):
        assert api.client.get("/v1/banks/export", headers=api.headers(who)).status_code == 403
        r = api.client.post("/v1/banks/import", content=CSV, headers=api.headers(who))
        assert r.status_code == 403
    admin = api.headers("adam")
    assert api.client.get("/v1/banks/export").status_code == 401
    assert (
        api.client.post("/v1/banks/import", content=b"\xff\xfe\x00", headers=admin).status_code
        == 400
    )
    assert api.client.get("/v1/banks/export?format=xml", headers=admin).status_code == 422
    assert api.client.post("/v1/banks/entries/999/enable", headers=admin).status_code == 404
    assert api.client.post("/v1/banks/entries/1/explode", headers=admin).status_code == 422
    r = api.client.post("/v1/banks/import", content="{}\n", headers=admin)
    assert r.status_code == 200 and r.json()["errors"][0]["line"] == 1
    made_up = f"hash,bank,category\n{H1},confirmed_violation,made_up\n"
    r = api.client.post("/v1/banks/import", content=made_up, headers=admin)
    assert r.status_code == 200 and r.json()["added"] == 0
    assert r.json()["errors"] == [
        {"line": 2, "message": "category 'made_up' is not in the catalog"}
    ]
    assert (
        api.client.post("/v1/banks/import", content=b"hash\n\x00", headers=admin).status_code == 400
    )
    assert api.client.get("/v1/banks/export?category=a%00b", headers=admin).status_code == 422
    assert api.client.post(f"/v1/banks/entries/{2**63}/enable", headers=admin).status_code == 422


def test_disable_and_enable_an_entry(api):
    admin = api.headers("adam")
    api.client.post("/v1/banks/import?retro=false", content=CSV, headers=admin)
    off = api.client.post("/v1/banks/entries/1/disable", headers=admin).json()
    assert (off["enabled"], off["retro_run"]) == (False, None)
    assert api.client.get("/v1/banks/export", headers=admin).text.count("\n") == 2
    on = api.client.post("/v1/banks/entries/1/enable", headers=admin).json()
    assert on["enabled"] is True and on["retro_run"]["entries"] == 1


def _b64(image) -> str:
    import base64
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_add_by_image_and_by_hash_then_match_as_the_cli_does(api):
    """bank add / bank match over HTTP: the same service calls as the CLI, the add
    audit-logged under api:<name>, a new entry retro-matched, duplicates answered 200."""
    from PIL import Image
    from sqlalchemy import select

    from moderation.db.models import AuditLogEntry
    from moderation.db.session import make_engine, make_sessionmaker
    from tests.synthetic_images import synthetic_photo

    admin = api.headers("adam")
    photo = synthetic_photo(22, (400, 300))
    r = api.client.post(
        "/v1/banks/entries",
        json={"bank": "confirmed_violation", "category": "sexual",
              "image_base64": _b64(photo), "reason": "case 12"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["outcome"] == "added" and added["retro_run"]["entries"] == 1
    again = api.client.post(
        "/v1/banks/entries",
        json={"bank": "confirmed_violation", "category": "sexual", "image_base64": _b64(photo)},
        headers=admin,
    )
    assert again.status_code == 200
    assert (again.json()["outcome"], again.json()["entry_id"]) == ("duplicate", added["entry_id"])
    by_hash = api.client.post(
        "/v1/banks/entries", json={"bank": "benign", "hash": H2, "quality": 80}, headers=admin
    )
    assert by_hash.status_code == 201 and by_hash.json()["pdq_hash"] == H2

    mirrored = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    found = api.client.post(
        "/v1/banks/match", json={"image_base64": _b64(mirrored)}, headers=admin
    ).json()
    assert found["match"]["entry_id"] == added["entry_id"]
    assert found["match"]["variant"] == "flip_h" and found["match"]["tier"] == "high"
    assert found["nearest"][0]["reason"] == "case 12"
    exact = api.client.post(
        "/v1/banks/match", json={"hash": added["pdq_hash"], "top": 1}, headers=admin
    ).json()
    assert exact["match"]["distance"] == 0 and len(exact["nearest"]) == 1
    benign = api.client.post("/v1/banks/match", json={"hash": H2}, headers=admin).json()
    assert benign["match"] is not None and benign["match"]["bank"] == "benign"

    engine = make_engine(api.settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "bank.add"))
            assert sorted(r.actor for r in rows) == ["api:adam", "api:adam"]
    finally:
        engine.dispose()


def test_add_and_match_refuse_bad_input_with_4xx(api):
    from tests.synthetic_images import flat_image

    admin = api.headers("adam")
    for body, status, where in (
        ({"bank": "confirmed_violation", "hash": H1}, 422, "category"),  # needs a category
        ({"bank": "benign", "category": "sexual", "hash": H1}, 422, "category"),
        ({"bank": "confirmed_violation", "category": "made_up", "hash": H1}, 422, "catalog"),
        ({"bank": "benign"}, 422, "exactly one"),
        ({"bank": "benign", "hash": H1, "image_base64": "AAAA"}, 422, "exactly one"),
        ({"bank": "benign", "hash": "xyz"}, 422, "pattern"),
        ({"bank": "benign", "image_base64": "!!!"}, 422, "pattern"),
        ({"bank": "benign", "image_base64": "AAAA"}, 422, "not_an_image"),
        ({"bank": "benign", "image_base64": _b64(flat_image())}, 422, "too featureless"),
        ({"bank": "benign", "hash": H1, "quality": 10}, 422, "too featureless"),
    ):
        r = api.client.post("/v1/banks/entries", json=body, headers=admin)
        assert r.status_code == status, (body, r.text)
        assert where in r.text, r.text
    assert api.client.post("/v1/banks/entries", content=b"{", headers={
        **admin, "content-type": "application/json"}).status_code == 400  # fmt: skip
    assert api.client.post("/v1/banks/match", content=b"x", headers=admin).status_code == 415
    assert api.client.post("/v1/banks/match", json={"hash": H1, "top": 0},
                           headers=admin).status_code == 422  # fmt: skip
    assert api.client.get("/v1/banks/export", headers=admin).text.count("\n") == 1  # header only


def test_small_upload_limit_is_413(api_factory):
    from tests.synthetic_images import synthetic_photo

    api = api_factory(max_upload_bytes=2048)
    r = api.client.post(
        "/v1/banks/match",
        json={"image_base64": _b64(synthetic_photo(1, (200, 200)))},
        headers=api.headers("adam"),
    )
    assert r.status_code == 413
