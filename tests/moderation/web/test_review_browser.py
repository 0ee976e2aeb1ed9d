"""The review page in headless Chromium: reveal a blurred image, decide with a key press, land
on the next item — the page's own script doing the work, on a seeded database."""

from __future__ import annotations

import re

import pytest
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Review
from tests.review_seed import seed_review_queue

# A page on the dashboard's origin that shows /review in a frame and acts like a reviewer in
# it: it waits for the page's script, checks the image is blurred (computed CSS, not just a
# class), clicks it, checks it is revealed, presses "v" and waits for the next page, whose DOM
# it copies into a <template id="landed"> for the test to read. Any check that fails stops it
# before the key press, so the item stays undecided and the database assertions fail. (A frame,
# not document.write: headless Chromium's virtual time never settles after navigating away
# from a written document that loaded an image.)
DRIVER = """<!doctype html><html><head><link rel="icon" href="data:,">
<style>body { margin: 0 } iframe { border: 0; width: 100%; height: 2400px }</style></head>
<body><iframe id="app" src="/review"></iframe><script>
const frame = document.getElementById("app");
const loaded = () => new Promise((r) => frame.addEventListener("load", r, {once: true}));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  await loaded();
  const doc = frame.contentDocument, win = frame.contentWindow;
  for (let i = 0; i < 200 && !doc.documentElement.hasAttribute("data-review-ready"); i++) {
    await sleep(25);
  }
  const img = doc.getElementById("review-image");
  await img.decode();  // the image route answered with a picture the browser can draw
  if (!win.getComputedStyle(img).filter.includes("blur")) return;
  img.click();
  if (win.getComputedStyle(img).filter !== "none") return;
  const next = loaded();
  doc.dispatchEvent(new KeyboardEvent("keydown", {key: "v", bubbles: true}));
  await next;
  const landed = document.createElement("template");
  landed.id = "landed";
  landed.innerHTML = frame.contentDocument.documentElement.outerHTML;
  document.body.appendChild(landed);
})();
</script></body></html>"""


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_reveal_decide_with_a_key_and_land_on_the_next_item(
    db_url, dashboard_factory, live_server, browser
):
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            ids = seed_review_queue(session)
        app = dashboard_factory(db_url)
        app.add_api_route("/_test/drive-review", lambda: HTMLResponse(DRIVER))
        served = live_server(app)
        # Only the DOM load drives the page (one reviewer step: decide the extreme item, land
        # on the high one); the screenshot is of the review page as a reviewer first sees it.
        page = browser(
            f"{served.base_url}/_test/drive-review",
            "review",
            "--virtual-time-budget=15000",
            screenshot_url=f"{served.base_url}/review",
        )
        with make_sessionmaker(engine)() as session:
            decided = session.execute(
                select(Review.review_item_id, Review.label, Review.reviewer).order_by(Review.id)
            ).all()
    finally:
        engine.dispose()

    assert page.console == [], page.console
    assert all(status < 400 for _, status in served.responses), served.responses
    assert [(i, str(label), who) for i, label, who in decided] == [
        (ids["extreme"], "violation", "local"),
    ]
    assert (f"/review/items/{ids['extreme']}", 303) in served.responses  # submit & next
    for item in ("extreme", "high"):
        assert (f"/review/items/{ids[item]}/image", 200) in served.responses
    assert ("/static/review.js", 200) in served.responses
    # landed on the next item: the high one, blurred again until revealed
    landed = page.dom.split('<template id="landed">', 1)[1]
    assert f'action="/review/items/{ids["high"]}"' in landed
    assert re.search(r'<img id="review-image"[^>]*class="blurred"', landed)
    assert "a rifle" in landed
    assert page.screenshot.stat().st_size > 10_000
