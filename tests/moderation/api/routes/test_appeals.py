"""Appeals end to end on the real stack pieces (Postgres, Redis, the real callback task and a
real HTTP receiver): the submitter appeals → a reviewer other than the one who reviewed the
job overturns it → a new decision version (the old one kept), a callback with the new tier,
audit-logged; the original reviewer cannot claim or decide it."""

from __future__ import annotations

from sqlalchemy import select, update

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import AuditLogEntry, Decision, DecisionHistory, Job, Review, Score
from moderation.db.repositories.reviews import evidence_records
from moderation.db.session import session_scope
from moderation.db.types import utcnow
from moderation.domain import JobStatus, ReviewLabel, RiskTier, ScoreSource
from moderation.services.appeals import appeal_labels
from tests.fakes import png_bytes
from tests.integration.servers import CallbackReceiver
from workers.celery_app import make_celery
from workers.ops import send_callback_for_job


def _decide(db_url: str, job_id: int, *, reviewer: str | None) -> None:
    """The job as the pipeline (high sexual) and, when given, a reviewer left it."""
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status=JobStatus.SCORED, finished_at=utcnow(), callback_state="sent")
            )
            s.add(
                Score(
                    job_id=job_id,
                    category="sexual",
                    score=0.83,
                    source=ScoreSource.EMBEDDING,
                    tier=RiskTier.HIGH,
                )
            )
            s.add(
                Decision(
                    job_id=job_id,
                    tier=RiskTier.HIGH,
                    action="review_now",
                    category="sexual",
                    policy="default",
                    threshold_versions={},
                )
            )
            if reviewer:
                s.add(
                    Review(
                        job_id=job_id,
                        reviewer=reviewer,
                        category="sexual",
                        label=ReviewLabel.VIOLATION,
                    )
                )
    finally:
        engine.dispose()


def test_an_appeal_is_overturned_by_another_reviewer_and_called_back(api_factory, redis_prefix):
    api = api_factory(callback_allowlist=["127.0.0.0/8"])
    receiver = CallbackReceiver().up()
    try:
        body = {"image_base64": __import__("base64").b64encode(png_bytes((1, 2, 3))).decode(),
                "callback_url": receiver.url}  # fmt: skip
        r = api.client.post("/v1/jobs", json=body, headers=api.headers("alice"))
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        appeal = {"reason": "a museum statue, not nudity"}
        # not decided yet: 409; someone else's job: 404
        r = api.client.post(f"/v1/jobs/{job_id}/appeal", json=appeal, headers=api.headers("alice"))
        assert r.status_code == 409
        _decide(api.settings.database_url, job_id, reviewer="rita")
        r = api.client.post(f"/v1/jobs/{job_id}/appeal", json=appeal, headers=api.headers("bob"))
        assert r.status_code == 404
        r = api.client.post(f"/v1/jobs/{job_id}/appeal", json=appeal, headers=api.headers("alice"))
        assert r.status_code == 201, r.text
        appeal_id = r.json()["id"]
        assert r.json()["tier"] == "high" and r.json()["category"] == "sexual"
        r = api.client.post(f"/v1/jobs/{job_id}/appeal", json=appeal, headers=api.headers("alice"))
        assert r.status_code == 409  # once only

        # rita reviewed the job: the queue does not offer it, and she cannot take or decide it
        rita = api.headers("rita")
        assert api.client.post("/v1/appeals/claim", headers=rita).json() is None
        assert api.client.post(f"/v1/appeals/{appeal_id}/claim", headers=rita).status_code == 403
        overturn = {"outcome": "overturned", "tier": "clear", "note": "art"}
        r = api.client.post(f"/v1/appeals/{appeal_id}/decide", json=overturn, headers=rita)
        assert r.status_code == 403
        # submitters do not judge appeals
        r = api.client.post("/v1/appeals/claim", headers=api.headers("alice"))
        assert r.status_code == 403

        # adam (another reviewer) claims it from the queue and overturns it
        adam = api.headers("adam")
        [queued] = api.client.get("/v1/appeals?status=open", headers=adam).json()
        assert queued["id"] == appeal_id
        claimed = api.client.post("/v1/appeals/claim", headers=adam).json()
        assert claimed["id"] == appeal_id and claimed["claimed_by"] == "adam"
        r = api.client.post(f"/v1/appeals/{appeal_id}/decide", json=overturn, headers=adam)
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == "overturned" and r.json()["new_tier"] == "clear"
        r = api.client.post(f"/v1/appeals/{appeal_id}/decide", json=overturn, headers=adam)
        assert r.status_code == 409  # decided already

        job = api.client.get(f"/v1/jobs/{job_id}", headers=api.headers("alice")).json()
        assert job["tier"] == "clear" and job["callback_state"] == "pending"

        # the real callback task sends the new decision
        app = make_celery(api.settings.model_copy(update={"broker_key_prefix": redis_prefix}))
        assert send_callback_for_job(app, job_id).startswith("sent")
        assert [(p["job_id"], p["tier"]) for p in receiver.received] == [(job_id, "clear")]
    finally:
        receiver.down()

    engine = make_engine(api.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            decision = s.scalars(select(Decision).where(Decision.job_id == job_id)).one()
            assert decision.version == 2 and decision.tier == RiskTier.CLEAR
            assert decision.reason == f"appeal #{appeal_id} overturned by adam"
            # the action rules follow the corrected tier (clear → allow, default rules)
            assert decision.enforcement == "allow"
            assert decision.enforcement_detail["categories"]["sexual"]["action"] == "allow"
            [old] = s.scalars(select(DecisionHistory).where(DecisionHistory.job_id == job_id))
            assert (old.version, old.tier) == (1, "high")
            actions = s.scalars(select(AuditLogEntry.action)).all()
            assert {"appeal.submit", "appeal.overturned"} <= set(actions)
            # labelled evidence with its own weight, never an audit for the estimators
            [label] = appeal_labels(s, weight=api.settings.appeal_evidence_weight)
            assert (label.row.ref, label.row.category, label.row.is_violation) == (
                str(job_id),
                "sexual",
                False,
            )
            assert label.weight == 0.5 and label.score == 0.83
            items, _reviews = evidence_records(s, "sexual")
            assert items == []
    finally:
        engine.dispose()
