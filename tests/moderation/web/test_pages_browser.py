"""The dashboard pages in headless Chromium: they load cleanly and show the seeded numbers."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def served(seeded_url, dashboard_factory, live_server):
    return live_server(dashboard_factory(seeded_url))


def _text(dom: str) -> str:
    """Visible-ish text of the DOM: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def _assert_clean(served, page) -> None:
    assert page.console == [], page.console
    assert served.responses and all(status < 400 for _, status in served.responses), (
        served.responses
    )
    assert page.screenshot.stat().st_size > 10_000


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_overview_in_chromium(served, browser):
    page = browser(f"{served.base_url}/overview?hours=2", "overview")
    _assert_clean(served, page)
    assert ("/static/dashboard.css", 200) in served.responses
    text = _text(page.dom)
    assert re.search(r'id="finished">8<', page.dom)  # 8 jobs finished 10:30–12:30
    assert "37.50 %" in text  # 2 failed + 1 quarantined of 8
    # throughput, tier mix, actions, backlog, failures, reviews
    assert page.dom.count("<svg") == 6
    assert "failed · undecodable: 2" in text and "quarantined · worker_crash: 1" in text
    assert re.search(r"jobs queued 2 10 min", text)  # backlog: oldest queued job at 12:20
    assert "weapons" in text and "extreme" in text
    assert re.search(r"alice weapons 2 2 50 %", text)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_thresholds_in_chromium(served, browser):
    page = browser(f"{served.base_url}/thresholds?hours=2", "thresholds")
    _assert_clean(served, page)
    text = _text(page.dom)
    assert 'id="category-weapons"' in page.dom and 'id="category-sexual"' in page.dom
    assert "Active: 0.21" in text
    assert "75.0 %" in text  # precision: 1.5 / 2 weighted flagged reviews were violations
    assert "27.3 %" in text  # recall: 1.5 / (1.5 + 4 from the π = 0.25 audit)
    assert "youden_j 0.61" in text  # the latest calibration's evidence
    assert "fn_rate 0.05" in text  # the adjuster's evidence
    assert "(no below-threshold reviews yet)" not in text
