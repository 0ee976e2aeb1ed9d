"""The admin API (thresholds, tokens, action rules) on SQLite and PostgreSQL: admin only
(401 without a token, 403 for submitters and reviewers), every change audit-logged, and the
same service functions as the CLI."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from moderation.db.models import ActionRuleVersion, AuditLogEntry
from moderation.db.session import make_engine, make_sessionmaker

ADMIN_CALLS = [
    ("get", "/v1/admin/thresholds", None),
    ("get", "/v1/admin/thresholds/versions/1", None),
    ("post", "/v1/admin/thresholds/sexual/set", {"base": 0.3, "reason": "x"}),
    ("post", "/v1/admin/thresholds/sexual/rollback", {}),
    ("post", "/v1/admin/thresholds/sexual/pin", {}),
    ("post", "/v1/admin/thresholds/sexual/unpin", {}),
    ("get", "/v1/admin/tokens", None),
    ("post", "/v1/admin/tokens", {"name": "n", "role": "submitter"}),
    ("post", "/v1/admin/tokens/n/revoke", None),
    ("get", "/v1/admin/action-rules", None),
    ("get", "/v1/admin/action-rules/versions", None),
    ("get", "/v1/admin/action-rules/versions/1", None),
    ("put", "/v1/admin/action-rules", {"rules": {}, "reason": "x"}),
    ("post", "/v1/admin/action-rules/rollback", {}),
    ("post", "/v1/admin/thresholds/calibrate", {}),
    ("post", "/v1/banks/entries", {"bank": "benign", "hash": "a" * 64}),
    ("post", "/v1/banks/match", {"hash": "a" * 64}),
    ("get", "/v1/admin/retention", None),
    ("post", "/v1/admin/retention/run", None),
    ("post", "/v1/admin/retention/run?dry_run=false", None),
]


def _audit(url: str) -> list[tuple[str, str, str | None]]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id))
            return [(r.actor, r.action, r.target_id) for r in rows]
    finally:
        engine.dispose()


@pytest.mark.parametrize("method,path,body", ADMIN_CALLS)
def test_every_admin_endpoint_is_401_without_a_token_and_403_below_admin(api, method, path, body):
    kwargs = {"json": body} if body is not None else {}
    assert getattr(api.client, method)(path, **kwargs).status_code == 401
    for who in ("alice", "rita"):
        r = getattr(api.client, method)(path, headers=api.headers(who), **kwargs)
        assert r.status_code == 403, (who, r.text)


def test_thresholds_set_pin_unpin_rollback_and_show(api_factory, db_url):
    api = api_factory(database_url=db_url)
    admin = api.headers("adam")
    assert api.client.get("/v1/admin/thresholds", headers=admin).json() == []
    r = api.client.post(
        "/v1/admin/thresholds/sexual/set",
        json={"base": 0.3, "scale": "gme_cosine", "reason": "first"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["category"] == "sexual" and first["pinned"] and first["value"] == 0.3
    cutoffs = {"warning": 0.1, "medium": 0.2, "high": 0.3, "extreme": 0.4}
    r = api.client.post(
        "/v1/admin/thresholds/sexual/set", json={"cutoffs": cutoffs, "reason": "2"}, headers=admin
    )
    assert r.status_code == 201 and r.json()["cutoffs"] == cutoffs
    assert api.client.post("/v1/admin/thresholds/sexual/pin", headers=admin).status_code == 409
    unpinned = api.client.post("/v1/admin/thresholds/sexual/unpin", headers=admin).json()
    assert unpinned["pinned"] is False
    back = api.client.post(
        "/v1/admin/thresholds/sexual/rollback", json={"to": first["id"]}, headers=admin
    )
    assert back.status_code == 201 and back.json()["restored_from_id"] == first["id"]
    assert back.json()["value"] == 0.3
    active = api.client.get("/v1/admin/thresholds", headers=admin).json()
    assert [v["id"] for v in active] == [back.json()["id"]]
    history = api.client.get("/v1/admin/thresholds?category=sexual", headers=admin).json()
    assert len(history) == 4
    shown = api.client.get(f"/v1/admin/thresholds/versions/{first['id']}", headers=admin).json()
    assert shown["active"] is False
    actions = [a for _, a, _ in _audit(db_url)]
    assert actions == [
        "thresholds.set",
        "thresholds.set",
        "thresholds.unpin",
        "thresholds.rollback",
    ]
    assert {actor for actor, _, _ in _audit(db_url)} == {"api:adam"}


def test_threshold_errors_are_4xx_with_a_clear_line(api_factory, db_url):
    api = api_factory(database_url=db_url)
    admin = api.headers("adam")
    post = api.client.post
    # no version yet and no scale: 422 naming the scales; both base and cutoffs: 422
    r = post("/v1/admin/thresholds/sexual/set", json={"base": 0.3, "reason": "x"}, headers=admin)
    assert r.status_code == 422 and "scale" in r.json()["detail"][0]["msg"]
    both = {"base": 0.3, "cutoffs": {"warning": 0.1}, "reason": "x", "scale": "gme_cosine"}
    assert post("/v1/admin/thresholds/sexual/set", json=both, headers=admin).status_code == 422
    falling = {"warning": 0.5, "medium": 0.2, "high": 0.3, "extreme": 0.4}
    r = post(
        "/v1/admin/thresholds/sexual/set",
        json={"cutoffs": falling, "scale": "gme_cosine", "reason": "x"},
        headers=admin,
    )
    assert r.status_code == 422 and "must not decrease" in r.json()["detail"][0]["msg"]
    assert post("/v1/admin/thresholds/made_up/pin", headers=admin).status_code == 404
    assert post("/v1/admin/thresholds/sexual/pin", headers=admin).status_code == 409
    assert post("/v1/admin/thresholds/sexual/rollback", headers=admin).status_code == 409
    assert post("/v1/admin/thresholds/Bad%00/pin", headers=admin).status_code == 422
    assert api.client.get("/v1/admin/thresholds/versions/9", headers=admin).status_code == 404
    r = post("/v1/admin/thresholds/sexual/set", content=b"{", headers=admin)
    assert r.status_code == 415
    r = post(
        "/v1/admin/thresholds/sexual/set",
        content=b"{",
        headers={**admin, "content-type": "application/json"},
    )
    assert r.status_code == 400


def test_tokens_add_list_revoke_and_the_new_token_works(api_factory, db_url):
    api = api_factory(database_url=db_url)
    admin = api.headers("adam")
    r = api.client.post("/v1/admin/tokens", json={"name": "up", "role": "submitter"}, headers=admin)
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    mine = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/v1/admin/tokens", headers=mine).status_code == 403  # a submitter
    again = api.client.post("/v1/admin/tokens", json={"name": "up", "role": "admin"}, headers=admin)
    assert again.status_code == 409
    static = api.client.post(
        "/v1/admin/tokens", json={"name": "alice", "role": "admin"}, headers=admin
    )
    assert static.status_code == 409
    bad = api.client.post("/v1/admin/tokens", json={"name": "x", "role": "god"}, headers=admin)
    assert bad.status_code == 422
    listed = api.client.get("/v1/admin/tokens", headers=admin).json()
    assert [(t["name"], t["role"], t["revoked_at"]) for t in listed] == [("up", "submitter", None)]
    assert "secret" not in listed[0]
    revoked = api.client.post("/v1/admin/tokens/up/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert api.client.post("/v1/admin/tokens/up/revoke", headers=admin).status_code == 404
    assert [a[1:] for a in _audit(db_url)] == [("tokens.add", "up"), ("tokens.revoke", "up")]
    long = "n" * 100  # longer than the audit log's target id: the entry keeps it in details
    r = api.client.post("/v1/admin/tokens", json={"name": long, "role": "admin"}, headers=admin)
    assert r.status_code == 201
    assert api.client.post(f"/v1/admin/tokens/{long}/revoke", headers=admin).status_code == 200
    too_long = {"name": "n" * 101, "role": "admin"}
    assert api.client.post("/v1/admin/tokens", json=too_long, headers=admin).status_code == 422


RULES = {
    "order": ["allow", "blur", "age_restrict", "hold", "quarantine", "block"],
    "default": {"action": "allow"},
    "rules": [
        {"category": "*", "tier": ["medium", "high"], "action": "quarantine", "escalate": True},
        {"category": "*", "tier": "extreme", "action": "block"},
    ],
}


def test_action_rules_show_set_rollback_versions_and_audit(api_factory, db_url):
    api = api_factory(database_url=db_url)
    admin = api.headers("adam")
    shown = api.client.get("/v1/admin/action-rules", headers=admin).json()
    assert shown["source"] == "packaged" and shown["version_id"] is None
    assert "block" in shown["rules"]["order"]
    assert api.client.post("/v1/admin/action-rules/rollback", headers=admin).status_code == 409
    r = api.client.put(
        "/v1/admin/action-rules", json={"rules": RULES, "reason": "custom"}, headers=admin
    )
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["rules"]["rules"][0]["action"] == "quarantine"
    shown = api.client.get("/v1/admin/action-rules", headers=admin).json()
    assert (shown["source"], shown["version_id"]) == ("version", first["id"])
    second = api.client.put(
        "/v1/admin/action-rules",
        json={"rules": {"default": {"action": "hold"}}, "reason": "hold all"},
        headers=admin,
    ).json()
    back = api.client.post(
        "/v1/admin/action-rules/rollback", json={"reason": "oops"}, headers=admin
    )
    assert back.status_code == 201 and back.json()["restored_from_id"] == first["id"]
    assert back.json()["rules"] == first["rules"]
    versions = api.client.get("/v1/admin/action-rules/versions", headers=admin).json()
    assert [v["id"] for v in versions] == [back.json()["id"], second["id"], first["id"]]
    assert (
        api.client.get(f"/v1/admin/action-rules/versions/{second['id']}", headers=admin).json()[
            "reason"
        ]
        == "hold all"
    )
    assert (
        api.client.post("/v1/admin/action-rules/rollback", json={"to": 99}, headers=admin)
    ).status_code == 404
    audit = _audit(db_url)
    assert [a for _, a, _ in audit] == [
        "action_rules.set",
        "action_rules.set",
        "action_rules.rollback",
    ]
    assert audit[-1] == ("api:adam", "action_rules.rollback", str(back.json()["id"]))
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as s:
        assert len(list(s.scalars(select(ActionRuleVersion)))) == 3  # every version kept
    engine.dispose()


@pytest.mark.parametrize(
    "rules,msg",
    [
        ({"rules": [{"category": "*", "tier": "hgh", "action": "block"}]},
         "rules[0].tier: not a tier (one of clear, warning, medium, high, extreme)"),
        ({"rules": [{"category": "*", "tier": "high", "action": "nuke"}]},
         "rules[0].action: action 'nuke' is not in order (allow, blur, age_restrict, hold, block)"),
        ({"rules": [{"category": "made_up", "tier": "high", "action": "block"}]},
         "rules[0].category: 'made_up' is not a catalog category"),
        ({"rules": [{"category": "*", "tier": "high", "action": "block"},
                    {"category": "*", "tier": ["medium", "high"], "action": "blur"}]},
         "rules[1]: overlaps rules[0] on (category *, tier high, source any): which one "
         "applies would be ambiguous"),
        ({"order": ["allow", "block"]},
         "order: must contain the built-in actions too (missing blur, age_restrict, hold)"),
        ({"rules": [{"category": "*", "tier": "high", "action": "block", "\x00": 1}]},
         "rules[0]: unknown key (allowed: action, category, escalate, source, tier)"),
    ],
)  # fmt: skip
def test_invalid_action_rules_are_422_with_one_clear_line(api, rules, msg):
    r = api.client.put(
        "/v1/admin/action-rules", json={"rules": rules, "reason": "x"}, headers=api.headers("adam")
    )
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["body", "rules"], "msg": msg, "type": "value_error"}]


def test_threshold_cutoffs_must_be_the_whole_ladder_and_finite(api):
    admin = api.headers("adam")
    path = "/v1/admin/thresholds/sexual/set"
    partial = {"cutoffs": {"warning": 0.1}, "scale": "gme_cosine", "reason": "x"}
    r = api.client.post(path, json=partial, headers=admin)
    assert r.status_code == 422 and "cutoffs needs exactly" in r.json()["detail"][0]["msg"]
    nan = b'{"base": NaN, "scale": "gme_cosine", "reason": "x"}'
    r = api.client.post(path, content=nan, headers={**admin, "content-type": "application/json"})
    assert r.status_code in (400, 422)
