"""Login, the one-key review flow, framing and cross-site posts in headless Chromium.

What only a browser shows: review.js still runs under the Content-Security-Policy after a
login, Chromium itself refuses to frame a dashboard page, and a form another origin submits
at a logged-in reviewer's browser changes nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from moderation.db import make_engine, make_sessionmaker
from tests.moderation.web.conftest import CHROMIUM_FLAGS, _chromium, driver_response
from tests.moderation.web.pages.test_review import item_status, reviews
from tests.review_seed import seed_review_queue

RITA = "rita-reviewer-secret-0000000000000000003"
TOKENS = [f"rita:reviewer:{RITA}"]

# Logs in through the login form's endpoint (fetch: same origin).
LOGIN = """
  const form = await (await fetch("/login")).text();
  const csrf = form.match(/name="csrf_token" value="([^"]+)"/)[1];
  const body = new URLSearchParams({token: %(secret)s, csrf_token: csrf, next: "/"});
  const done = await fetch("/login", {method: "POST", body});
  if (!done.ok) console.error("login failed: " + done.status);
"""
DRIVE_REVIEW = """<!doctype html><link rel="icon" href="data:,"><script>
(async () => {
%(login)s
  const start = await (await fetch("/review")).text();
  const token = start.match(/name="csrf_token" value="([^"]+)"/)[1];
  await fetch("/review/claim", {method: "POST", body: new URLSearchParams({csrf_token: token})});
  // the real review page in a window of its own (a frame is refused, as it should be)
  const review = window.open("/review", "review");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const ready = () => review.document && review.document.documentElement.dataset.reviewReady;
  for (let i = 0; i < 200 && !ready(); i++) await sleep(50);
  if (!ready()) { console.error("review.js did not run"); return; }
  const first = review.document.getElementById("review-form").dataset.item;
  // the extreme item asks one category: one key decides it and submits the form
  review.document.dispatchEvent(new review.KeyboardEvent("keydown", {key: "v", bubbles: true}));
  const moved = () => {
    const form = ready() && review.document.getElementById("review-form");
    return form && form.dataset.item !== first ? form.dataset.item : null;
  };
  for (let i = 0; i < 200 && !moved(); i++) await sleep(50);
  document.body.textContent = "reviewed " + first + ", now showing " + moved() + " to " +
    review.document.querySelector(".viewer").textContent;
})();
</script><body></body>"""
LOGIN_ONLY = """<!doctype html><link rel="icon" href="data:,"><script>
(async () => {
%(login)s
  document.body.textContent = "logged in: " + (await (await fetch("/overview")).text()).includes(
    'class="viewer">rita<');
})();
</script><body></body>"""


@pytest.fixture
def queue(pg_url, tmp_path):
    engine = make_engine(pg_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            ids = seed_review_queue(session, tmp_path)
    finally:
        engine.dispose()
    return pg_url, ids


def _dashboard(queue, dashboard_factory, live_server):
    app = dashboard_factory(queue[0], api_tokens=TOKENS)
    login = LOGIN % {"secret": json.dumps(RITA)}
    app.add_api_route(
        "/_test/drive-review", lambda: driver_response(DRIVE_REVIEW % {"login": login})
    )
    app.add_api_route("/_test/log-in", lambda: driver_response(LOGIN_ONLY % {"login": login}))
    return live_server(app)


def test_the_one_key_review_flow_works_after_a_login(
    queue, dashboard_factory, live_server, tmp_path
):
    db_url, ids = queue
    served = _dashboard(queue, dashboard_factory, live_server)
    run = run_chromium(tmp_path / "profile", f"{served.base_url}/_test/drive-review",
                       "--virtual-time-budget=20000", "--disable-popup-blocking")  # fmt: skip
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no CSP refusal of review.js, no failed login
    item, following = ids["extreme"], ids["high"]
    assert f"reviewed {item}, now showing {following} to rita" in run.stdout, run.stdout[-800:]
    assert ("/login", 303) in served.responses and ("/review/claim", 303) in served.responses
    assert ("/static/review.js", 200) in served.responses
    assert (f"/review/items/{item}", 303) in served.responses  # "v" submitted the form
    assert all(status < 400 for _, status in served.responses), served.responses
    assert reviews(db_url) == [(item, "rita", "weapons", "violation", None)]
    assert item_status(db_url, following) == ("claimed", "rita")  # claimed by the submit


def _other_origin(live_server, html: str):
    """A site on another port: another origin (and, on 127.0.0.1, the same site)."""
    evil = FastAPI()
    evil.add_api_route("/", lambda: HTMLResponse(html))
    return live_server(evil)


def test_chromium_refuses_to_frame_the_dashboard(queue, dashboard_factory, live_server, browser):
    served = _dashboard(queue, dashboard_factory, live_server)
    evil = _other_origin(
        live_server,
        f'<!doctype html><link rel="icon" href="data:,"><iframe src="{served.base_url}/login" '
        'width="800" height="600"></iframe>',
    )
    page = browser(evil.base_url + "/", "framed-dashboard", "--virtual-time-budget=5000")
    refusals = [line for line in page.console if "frame-ancestors" in line]
    assert refusals, page.console  # Chromium says why it showed nothing
    assert ("/login", 200) in served.responses  # served, and the browser refused to show it
    assert 'name="csrf_token"' not in page.dom


def run_chromium(profile: Path, url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """One headless run on a kept profile (so the second run has the first one's cookies)."""
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def test_a_cross_site_form_post_at_a_logged_in_browser_changes_nothing(
    queue, dashboard_factory, live_server, tmp_path
):
    db_url, ids = queue
    served = _dashboard(queue, dashboard_factory, live_server)
    profile = tmp_path / "victim-profile"
    logged = run_chromium(profile, f"{served.base_url}/_test/log-in", "--virtual-time-budget=5000")
    assert "logged in: true" in logged.stdout, logged.stdout[-500:]
    item = ids["high"]
    # a page elsewhere submits a review form straight at the dashboard (no CSRF token to know)
    evil = _other_origin(
        live_server,
        f"""<!doctype html><link rel="icon" href="data:,"><body onload="document.forms[0].submit()">
        <form method="post" action="{served.base_url}/review/items/{item}">
        <input name="label:sexual" value="violation"></form></body>""",
    )
    run_chromium(profile, evil.base_url + "/", "--virtual-time-budget=5000")
    assert (f"/review/items/{item}", 403) in served.responses, served.responses
    assert reviews(db_url) == [] and item_status(db_url, item) == ("open", None)
