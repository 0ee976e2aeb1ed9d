"""The dashboard's Banks page on both backends: bank hits per hour, entries per bank and the
retro-matching runs with their progress."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Decision
from moderation.db.repositories import retro as retro_repo
from moderation.domain import BankKind
from moderation.hashbank.banks import bank_hash
from moderation.hashbank.hashing import PdqHash
from moderation.services.banks import bank_activity
from tests.dashboard_seed import NOW


def test_banks_page_shows_hits_entries_and_retro_runs(seeded_url, dashboard_factory):
    engine = make_engine(seeded_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            entry = bank_hash(s, bank=BankKind.CONFIRMED_VIOLATION, pdq=PdqHash("ab" * 32, 90),
                              added_by="rita", category="weapons").entry  # fmt: skip
            assert entry is not None
            ids = s.scalars(select(Decision.id).order_by(Decision.id).limit(3)).all()
            hit_at = NOW - dt.timedelta(minutes=90)  # 11:00 hour
            s.execute(
                update(Decision)
                .where(Decision.id.in_(ids))
                .values(matched_bank_entry_id=entry.id, decided_at=hit_at)
            )
            run = retro_repo.create_run(s, [entry.id], trigger="import:list.csv", since=NOW)
            retro_repo.update_run(s, run.id, status="done", scanned=7, matched=2, redecided=3)
        with make_sessionmaker(engine)() as s:
            activity = bank_activity(s, NOW, 3)
        hour = dt.datetime(2026, 11, 20, 11, 0, tzinfo=dt.UTC)
        assert [(h, n) for h, n in activity.hits_per_hour if n] == [(hour, 3)]
        assert [h for h, _ in activity.hits_per_hour][0] == dt.datetime(
            2026, 11, 20, 9, 0, tzinfo=dt.UTC
        )
    finally:
        engine.dispose()
    with TestClient(dashboard_factory(seeded_url)) as client:
        page = client.get("/banks", params={"hours": 3})
        assert page.status_code == 200
        assert '<span class="bank-hits">3</span>' in page.text
        assert "11-20 11:00" in page.text
        assert "import:list.csv" in page.text and "7 / " in page.text
        assert "<td>confirmed_violation</td><td>weapons</td><td>1</td>" in page.text
        assert 'href="/banks' in client.get("/overview").text  # in the nav
        assert client.get("/banks", params={"hours": 0}).status_code == 422
