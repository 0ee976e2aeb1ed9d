"""``moderation actions`` and ``moderation tokens`` against the admin API: the CLI and the API
call the same services, so each sees the other's changes and writes the same audit entries."""

from __future__ import annotations

import json

from moderation.db.repositories import audit_log
from tests.moderation.cli.runner import db_session, fails, invoke, ok

RULES_YAML = """\
order: [allow, blur, age_restrict, hold, block]
rules:
  - {category: "*", tier: [medium, high, extreme], action: hold, escalate: true}
"""


def test_set_show_history_rollback_and_parity_with_the_api(api_factory, db_url, tmp_path):
    u = ("--url", db_url)
    shown = json.loads(ok("actions", "show", "--json", *u))
    assert shown["source"] == "packaged"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {category: '*', tier: hgh, action: block}\n")
    fails("actions", "set", str(bad), "--reason", "r", *u,
          match=f"{bad}: rules[0].tier: not a tier")  # fmt: skip
    good = tmp_path / "rules.yaml"
    good.write_text(RULES_YAML)
    assert "version 1 in force" in ok("actions", "set", str(good), "--reason", "cli", *u)
    api = api_factory(database_url=db_url)
    admin = api.headers("adam")
    via_api = api.client.get("/v1/admin/action-rules", headers=admin).json()
    assert (via_api["source"], via_api["version_id"]) == ("version", 1)
    assert via_api["rules"] == json.loads(ok("actions", "show", "--json", *u))["rules"]
    r = api.client.put(
        "/v1/admin/action-rules", json={"rules": {"default": "block"}, "reason": "api"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201
    history = json.loads(ok("actions", "history", "--json", *u))
    assert [(v["id"], v["created_by"]) for v in history][0] == (2, "api:adam")
    assert "restoring version 1" in ok("actions", "rollback", "--actor", "ana", *u)
    assert (
        api.client.get("/v1/admin/action-rules", headers=admin).json()["rules"]
        == (via_api["rules"])
    )
    fails("actions", "rollback", "--to", "99", *u, match="no action rule version 99")
    with db_session(db_url) as s:
        entries = audit_log.entries(s, target_type="action_rule_version")
        by_version = {e.target_id: (e.action, e.actor) for e in entries}
        assert by_version["2"] == ("action_rules.set", "api:adam")
        assert by_version["3"] == ("action_rules.rollback", "ana")
        assert by_version["1"][0] == "action_rules.set" and by_version["1"][1].startswith("cli")


def test_tokens_added_by_the_cli_are_revoked_by_the_api_and_both_audit(api_factory, db_url):
    u = ("--url", db_url)
    result = invoke("tokens", "add", "svc", "submitter", "--actor", "ana", *u)
    assert result.exit_code == 0, result.output
    api = api_factory(database_url=db_url)
    admin = api.headers("adam")
    listed = api.client.get("/v1/admin/tokens", headers=admin).json()
    assert [t["name"] for t in listed] == ["svc"]
    assert api.client.post("/v1/admin/tokens/svc/revoke", headers=admin).status_code == 200
    fails("tokens", "revoke", "svc", *u, match="no live token named 'svc'")
    with db_session(db_url) as s:
        entries = audit_log.entries(s, target_type="api_token")
        assert sorted((e.action, e.actor) for e in entries) == [
            ("tokens.add", "ana"),
            ("tokens.revoke", "api:adam"),
        ]
