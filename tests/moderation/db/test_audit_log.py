"""Audit log on both backends: appended in the caller's transaction, read newest first."""

from __future__ import annotations

from moderation.db import make_sessionmaker
from moderation.db.repositories import audit_log


def test_entries_are_appended_and_filtered(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        audit_log.record_action(s, actor="ana", action="thresholds.set",
                                target_type="threshold_version", target_id=3,
                                details={"category": "weapons"})  # fmt: skip
        audit_log.record_action(s, actor="bo", action="reviews.create", target_type="job")
    with Session.begin() as s:
        audit_log.record_action(s, actor="cy", action="thresholds.rollback",
                                target_type="threshold_version", target_id="4")  # fmt: skip
        s.rollback()  # an action that rolls back leaves no trace
    with Session() as s:
        everything = audit_log.entries(s)
        assert [e.actor for e in everything] == ["bo", "ana"]
        (entry,) = audit_log.entries(s, target_type="threshold_version")
        assert (entry.target_id, entry.details) == ("3", {"category": "weapons"})
        assert entry.at.tzinfo is not None
        assert audit_log.entries(s, action="reviews.create")[0].actor == "bo"
