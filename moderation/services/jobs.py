"""Reading jobs for the API and the CLI: one job's decision, listings, counts by status.

Requeueing (retry, the reaper) is ``moderation.services.requeue``; submitting is
``moderation.pipeline.intake``.
"""

from __future__ import annotations

import dataclasses

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
    "submitter_view",
]


def submitter_view(view: JobView) -> JobView:
    """``view`` as its submitting tenant may see it: that the upload matched a hash bank, the
    bank, category, entry id and distance — but not the entry's ``reason``, which names the
    reviewer who confirmed it and the (other tenant's) job it was banked from. Reviewers and
    admins get the full view."""
    if view.bank_match is None or view.bank_match.reason is None:
        return view
    return dataclasses.replace(view, bank_match=dataclasses.replace(view.bank_match, reason=None))
