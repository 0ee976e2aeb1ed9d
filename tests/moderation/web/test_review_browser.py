"""The review page in headless Chromium: reveal a blurred image, decide with a key press, land
on the next item — the page's own script doing the work, on a seeded database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Review
from moderation.services.reviews import claim_items
from tests.moderation.web.conftest import driver_response
from tests.review_seed import NOW, seed_review_queue

# A page on the dashboard's origin that opens /review in a window of its own and acts like a
# reviewer in it: it waits for the page's script, checks the image is blurred (computed CSS,
# not just a class), clicks it, checks it is revealed, presses "v" and waits for the next page,
# whose DOM it copies into a <template id="landed"> for the test to read. Any check that fails
# stops it before the key press, so the item stays undecided and the database assertions fail.
# (A window, not a frame: the dashboard refuses to be framed, by its own origin too; not
# document.write: headless Chromium's virtual time never settles after navigating away from a
# written document that loaded an image.)
DRIVER = """<!doctype html><html><head><link rel="icon" href="data:,"></head><body><script>
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (done) => {
  for (let i = 0; i < 200 && !done(); i++) await sleep(25);
  return done();
};
(async () => {
  const win = window.open("/review", "review");
  const ready = () =>
    win.document && win.document.documentElement.hasAttribute("data-review-ready");
  await until(ready);
  const doc = win.document;
  const first = doc.getElementById("review-form").dataset.item;
  const img = doc.getElementById("review-image");
  await img.decode();  // the image route answered with a picture the browser can draw
  // (polled: on a loaded machine the stylesheet can still be on its way when the page's
  // script has run)
  if (!(await until(() => win.getComputedStyle(img).filter.includes("blur")))) return;
  img.click();
  if (!(await until(() => win.getComputedStyle(img).filter === "none"))) return;
  doc.dispatchEvent(new win.KeyboardEvent("keydown", {key: "v", bubbles: true}));
  const moved = () => {
    const form = ready() && win.document.getElementById("review-form");
    return form && form.dataset.item !== first && win.document.readyState === "complete";
  };
  await until(moved);
  const landed = document.createElement("template");
  landed.id = "landed";
  landed.innerHTML = win.document.documentElement.outerHTML;
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
            # the reviewer pressed "Start reviewing" (a POST: GET /review claims nothing)
            claimed = claim_items(session, reviewer="local", n=1, lease_s=900, now=NOW)
            assert [c.item_id for c in claimed] == [ids["extreme"]]
        app = dashboard_factory(db_url)  # --no-auth: the reviewer is "local"
        app.add_api_route("/_test/drive-review", lambda: driver_response(DRIVER))
        served = live_server(app)
        # Only the DOM load drives the page (one reviewer step: decide the extreme item, land
        # on the high one); the screenshot is of the review page as a reviewer first sees it.
        page = browser(
            f"{served.base_url}/_test/drive-review",
            "review",
            "--virtual-time-budget=15000",
            "--disable-popup-blocking",
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
