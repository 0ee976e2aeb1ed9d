"""Reading jobs for the API and the CLI: one job's decision, listings, counts by status.

Requeueing (retry, the reaper) is ``moderation.services.requeue``; submitting is
``moderation.pipeline.intake``.
"""

from __future__ import annotations

from moderation.db.repositories.job_views import (
    BankMatchView,
    JobView,
    ScoreView,
    StoppedJob,
    get_job_view,
    list_job_views,
    list_stopped_jobs,
)
from moderation.db.repositories.jobs import count_by_status, oldest_by_status

__all__ = [
    "BankMatchView",
    "JobView",
    "ScoreView",
    "StoppedJob",
    "count_by_status",
    "get_job_view",
    "list_job_views",
    "list_stopped_jobs",
    "oldest_by_status",
]
