"""The dashboard app over a seeded database on both backends, without a browser."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from moderation.db.migrate import upgrade


@pytest.fixture
def client(seeded_url, dashboard_factory):
    with TestClient(dashboard_factory(seeded_url)) as client:
        yield client


def test_overview_shows_the_seeded_window(client):
    page = client.get("/overview", params={"hours": 2})
    assert page.status_code == 200
    assert 'id="finished">8<' in page.text
    assert 'id="failure-rate">37.50 %<' in page.text
    assert "worker_crash" in page.text and "undecodable" in page.text
    # 3 audit items (ri3, ri4, ri6: 3 images) over 5 scored uploads (j1, j2, j10, j11, j12)
    assert 'id="audit-load">600<' in page.text
    assert "3 audit review\nitems over 5 scored uploads; 600 of" in page.text


def test_a_wider_window_reads_more(client):
    page = client.get("/overview", params={"hours": 6})  # from 06:30: j5 (09:00) too
    assert 'id="finished">9<' in page.text
    assert 'id="audit-load">500<' in page.text  # j5 (09:00) is a sixth upload, not audited


def test_thresholds_show_history_evidence_and_estimates(client):
    page = client.get("/thresholds", params={"hours": 2})
    assert page.status_code == 200
    assert "75.0 %" in page.text and "27.3 %" in page.text
    assert "youden_j" in page.text and "fn_rate" in page.text
    one = client.get("/thresholds", params={"hours": 2, "category": "sexual"})
    assert 'id="category-sexual"' in one.text and 'id="category-weapons"' not in one.text


def test_root_redirects_to_the_first_page(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/overview"


def test_nav_lists_the_pages_in_order(client):
    nav = client.get("/overview").text.split("<nav>")[1].split("</nav>")[0]
    titles = ["Overview", "Review", "Thresholds", "Matcher"]  # ordered by PAGE.order
    positions = [nav.index(f">{title}<") for title in titles]
    assert positions == sorted(positions)


@pytest.mark.parametrize("hours", ["0", "-3", "abc", str(24 * 31 + 1)])
def test_bad_window_is_refused_clearly(client, hours):
    response = client.get("/overview", params={"hours": hours})
    assert response.status_code == 422
    assert "hours" in response.text


def test_empty_database_renders_placeholders(sqlite_url, dashboard_factory):
    with TestClient(dashboard_factory(sqlite_url)) as client:
        overview = client.get("/overview")
        thresholds = client.get("/thresholds")
    assert overview.status_code == 200 and thresholds.status_code == 200
    assert "no data in this window" in overview.text and "nothing waiting" in overview.text
    # no version yet: each category the scorer scores shows the cut-off in force (the preset)
    assert "In force:" in thresholds.text and "No threshold version yet" in thresholds.text


def test_database_without_schema_gives_a_503_page(tmp_path, dashboard_factory):
    url = f"sqlite:///{tmp_path / 'blank.sqlite3'}"
    with TestClient(dashboard_factory(url)) as client:
        response = client.get("/overview")
    assert response.status_code == 503
    assert "moderation db upgrade" in response.text and "no such table" in response.text


def test_migrated_database_recovers_after_upgrade(tmp_path, dashboard_factory):
    url = f"sqlite:///{tmp_path / 'late.sqlite3'}"
    with TestClient(dashboard_factory(url)) as client:
        assert client.get("/overview").status_code == 503
        upgrade(url)
        assert client.get("/overview").status_code == 200
