"""``moderation thresholds``: set, list, show, rollback on both backends, with audit entries."""

from __future__ import annotations

import json

from moderation.db.repositories import audit_log
from moderation.db.repositories import thresholds as repo
from moderation.domain import RiskTier
from tests.moderation.cli.runner import db_session, fails, ok


def test_set_list_show_rollback_round_trip(db_url):
    u = ("--url", db_url)
    assert "no threshold versions yet" in ok("thresholds", "list", *u)
    out = ok("thresholds", "set", "weapons", "--base", "0.2", "--scale", "gme_cosine",
             "--reason", "too many misses", "--actor", "ana", *u)  # fmt: skip
    assert "weapons: version 1 active (base 0.2000, gme_cosine)" in out
    ok("thresholds", "set", "weapons", "--cutoffs", "0.1,0.15,0.25,0.35", "--reason", "tune", *u)
    ok("thresholds", "set", "gore", "--base", "0.3", "--scale", "probability", "--reason", "r", *u)
    listed = ok("thresholds", "list", *u)
    assert "gore" in listed and "0.1500" in listed and "0.2000" not in listed  # active only
    history = json.loads(ok("thresholds", "list", "--category", "weapons", "--json", *u))
    assert [v["id"] for v in history] == [2, 1]
    shown = json.loads(ok("thresholds", "show", "1", "--json", *u))
    assert shown["cutoffs"]["medium"] == 0.2 and shown["created_by"] == "ana"
    assert shown["active"] is False and shown["scale"] == "gme_cosine"

    assert "restoring version 1" in ok("thresholds", "rollback", "weapons", "--actor", "bo", *u)
    ok("thresholds", "rollback", "weapons", "--to", "2", "--reason", "back again", *u)
    with db_session(db_url) as s:
        versions = repo.history(s, "weapons")
        assert [v.id for v in versions] == [5, 4, 2, 1]
        assert (versions[1].restored_from_id, versions[1].value) == (1, 0.2)
        assert versions[1].cutoffs == versions[3].cutoffs and versions[1].created_by == "bo"
        assert (versions[0].restored_from_id, versions[0].reason) == (2, "back again")
        assert versions[0].cutoffs[RiskTier.WARNING] == 0.1
        entries = audit_log.entries(s, target_type="threshold_version")
        actions = [e.action for e in entries]
        assert actions == ["thresholds.rollback"] * 2 + ["thresholds.set"] * 3
        # the one writer (thresholds.versions.write_version) always logs category and value
        assert entries[1].details == {"category": "weapons", "value": 0.2, "restored_from_id": 1,
                                      "replaced_version_id": 2}  # fmt: skip
    assert "restores 1" in ok("thresholds", "list", "--all", *u)
    assert '"miss_rate_upper"' not in ok("thresholds", "show", "4", *u)  # manual: no evidence


BAD_REQUESTS = [
    (("show", "99"), "no threshold version 99"),
    (("rollback", "weapons"), "only one version"),
    (("rollback", "nudity"), "nudity has no threshold versions"),
    (("rollback", "weapons", "--to", "2"), "version 2 is not a version of weapons"),
    (("set", "drugs", "--base", "0.2", "--reason", "r"), "pass --scale"),
    (("set", "weapons", "--reason", "r"), "exactly one of --base or --cutoffs"),
    (("set", "weapons", "--base", "0.2", "--cutoffs", "1,2,3,4", "--reason", "r"), "exactly"),
    (("set", "weapons", "--cutoffs", "0.3,0.2,0.4,0.5", "--reason", "r"), "must not decrease"),
    (("set", "weapons", "--cutoffs", "0.1,0.2", "--reason", "r"), "needs 4 numbers"),
    (("set", "weapons", "--cutoffs", "a,b,c,d", "--reason", "r"), "must be 4 numbers"),
    (("set", "weapons", "--base", "1.5", "--reason", "r"), "outside the gme_cosine range"),
]


def test_bad_requests_are_one_line_errors_and_write_nothing(sqlite_url):
    u = ("--url", sqlite_url)
    for category in ("weapons", "gore"):
        ok("thresholds", "set", category, "--base", "0.2", "--scale", "gme_cosine",
           "--reason", "r", *u)  # fmt: skip
    for args, match in BAD_REQUESTS:
        fails("thresholds", *args, *u, match=match)
    with db_session(sqlite_url) as s:
        assert len(repo.history(s)) == 2  # nothing half-written


def test_hand_set_versions_are_pinned_and_pin_unpin_write_versions(db_url):
    u = ("--url", db_url)
    ok("thresholds", "set", "weapons", "--base", "0.2", "--scale", "gme_cosine", "--reason", "r",
       "--actor", "ana", *u)  # fmt: skip
    assert json.loads(ok("thresholds", "show", "1", "--json", *u))["pinned"] is True
    assert "│ pinned │" in ok("thresholds", "list", *u)  # the pin column
    fails("thresholds", "pin", "weapons", *u, match="weapons is already pinned (version 1)")
    assert "weapons: unpinned (version 2, same cut-offs)" in ok(
        "thresholds", "unpin", "weapons", "--actor", "bo", *u
    )
    fails("thresholds", "unpin", "weapons", *u, match="weapons is already unpinned (version 2)")
    assert "│ pinned │" not in ok("thresholds", "list", *u)
    ok("thresholds", "pin", "weapons", "--reason", "hold for the launch", *u)
    ok("thresholds", "rollback", "weapons", "--to", "2", *u)
    fails("thresholds", "pin", "nudity", *u, match="nudity has no threshold version to pin")
    with db_session(db_url) as s:
        history = repo.history(s, "weapons")
        assert [(v.id, v.pinned) for v in history] == [(4, True), (3, True), (2, False), (1, True)]
        assert all(v.cutoffs == history[-1].cutoffs for v in history)
        assert (history[2].created_by, history[2].reason) == ("bo", "unpinned by bo")
        assert history[1].reason == "hold for the launch"
        assert history[2].stats == {"previous_version_id": 1}
        entries = audit_log.entries(s, target_type="threshold_version")
        assert [e.action for e in entries][:3] == [
            "thresholds.rollback",
            "thresholds.pin",
            "thresholds.unpin",
        ]
        assert entries[2].details == {"category": "weapons", "value": 0.2, "previous_version_id": 1}
    shown = json.loads(ok("thresholds", "list", "--all", "--json", *u))
    assert [v["pinned"] for v in shown] == [True, True, False, True]


def test_help_lists_every_command():
    out = ok("thresholds", "--help")
    for command in ("list", "show", "set", "rollback", "pin", "unpin", "adjust"):
        assert command in out
