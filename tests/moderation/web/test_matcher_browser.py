"""The matcher playground in headless Chromium: the real form filled in and submitted."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest

from moderation.embedders.fake import FakeEmbedder
from tests.moderation.web.conftest import driver_response

IMAGE_TEXT = "a red old bicycle on grass"  # four content words: red, old, bicycle, grass
# Fake cosines ≈ shared words / sqrt(words × 4) ± 0.04: 1.0, 0.5, ≈0.35 … ≈0.19, ≈0.
TEXTS = [
    "a cat", "grass with a dog and a cat", IMAGE_TEXT, "a red car", "a bicycle",
    "an old house near the sea", "grass seeds from the farm shop in town near me",
]  # fmt: skip

# A page on the dashboard's own origin that loads /matcher, fills in ITS form (a file through
# DataTransfer, the texts) and submits it: the browser then shows the server's answer.
DRIVER = """<!doctype html><link rel="icon" href="data:,"><script>
(async () => {
  const page = await (await fetch("/matcher")).text();
  document.open(); document.write(page); document.close();
  const bytes = Uint8Array.from(atob(%(png)s), (c) => c.charCodeAt(0));
  const files = new DataTransfer();
  files.items.add(new File([bytes], "bicycle.png", {type: "image/png"}));
  document.getElementById("image").files = files.files;
  document.getElementById("texts").value = %(texts)s;
  document.querySelector("form.matcher").submit();
})();
</script>"""


def driver_page() -> str:
    buffer = io.BytesIO()
    FakeEmbedder.image_matching(IMAGE_TEXT).save(buffer, "PNG")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return DRIVER % {"png": json.dumps(png), "texts": json.dumps("\n".join(TEXTS))}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_matcher_submits_and_shows_sorted_bars_in_chromium(
    seeded_url, dashboard_factory, live_server, browser
):
    app = dashboard_factory(seeded_url, backend="fake")
    app.add_api_route("/_test/drive-matcher", lambda: driver_response(driver_page()))
    served = live_server(app)
    # the submit happens after load: let Chromium run the page's tasks before capturing
    page = browser(
        f"{served.base_url}/_test/drive-matcher", "matcher", "--virtual-time-budget=15000"
    )
    assert page.console == [], page.console
    assert ("/matcher", 200) in served.responses and ("/static/dashboard.css", 200) in (
        served.responses
    )
    assert all(status < 400 for _, status in served.responses), served.responses
    assert page.screenshot.stat().st_size > 10_000
    bars = re.findall(
        r'<li class="match band-(\w+)" data-band="\w+" data-score="([-\d.]+)">\s*'
        r'<span class="text">([^<]*)</span>',
        page.dom,
    )
    assert [text for *_, text in bars][0] == IMAGE_TEXT and bars[0][0] == "very_high"
    scores = [float(score) for _, score, _ in bars]
    assert len(bars) == len(TEXTS) and scores == sorted(scores, reverse=True)
    assert bars[-1][2] == "a cat" and bars[-1][0] == "none"
    assert 'id="category-weapons"' in page.dom and "Backend: <strong>fake</strong>" in page.dom
