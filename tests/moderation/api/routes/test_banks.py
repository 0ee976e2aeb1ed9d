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
