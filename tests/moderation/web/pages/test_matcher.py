"""The matcher playground page in process: uploads, sorted coloured bars, tiers, inline errors."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from moderation.db import make_engine, make_sessionmaker
from moderation.db.repositories.thresholds import append_version
from moderation.domain import RiskTier
from moderation.embedders.fake import FakeEmbedder
from moderation.web.pages.matcher import BAND_COLORS, bars
from moderation.web.playground import MAX_TEXTS, Playground, TextScore
from tests.dashboard_auth import DashboardClient, log_in

TEXTS = "a cat\n\na red bicycle\na red car\n  \na blue bicycle\n"


def png_of(text: str) -> bytes:
    buffer = io.BytesIO()
    FakeEmbedder.image_matching(text).save(buffer, "PNG")
    return buffer.getvalue()


def rows(html: str) -> list[tuple[str, str, float]]:
    """(text, band class, score) of each bar, in page order."""
    found = re.findall(
        r'<li class="match band-(\w+)" data-band="\w+" data-score="([-\d.]+)">\s*'
        r'<span class="text">([^<]*)</span>',
        html,
    )
    return [(text, band, float(score)) for band, score, text in found]


@pytest.fixture
def fake_client(sqlite_url, dashboard_factory):
    with DashboardClient(dashboard_factory(sqlite_url, backend="fake")) as client:
        yield client


def test_the_form_names_the_backend_before_loading_any_model(fake_client):
    page = fake_client.get("/matcher")
    assert page.status_code == 200
    assert "Backend: <strong>fake</strong>" in page.text and "loads on the first match" in page.text
    assert "A girl\nA boy\nA cat" in page.text  # the seed page's example texts
    assert 'enctype="multipart/form-data"' in page.text and "needs-embedder" not in page.text
    nav = page.text.split("<nav>")[1].split("</nav>")[0]
    assert 'href="/matcher" aria-current="page">Matcher<' in nav


def test_texts_are_scored_sorted_and_coloured_by_band(fake_client):
    page = fake_client.post(
        "/matcher",
        files={"image": ("bike.png", png_of("a red bicycle"), "image/png")},
        data={"texts": TEXTS},
    )
    assert page.status_code == 200
    found = rows(page.text)
    assert [text for text, _, _ in found][0] == "a red bicycle"  # the drawn phrasing wins
    assert found[0][1] == "very_high" and found[0][2] > 0.99
    scores = [score for *_, score in found]
    assert len(found) == 4 and scores == sorted(scores, reverse=True)
    assert found[-1][0] == "a cat" and found[-1][1] == "none"
    for _, band, _ in found:
        assert f"background: {BAND_COLORS[band]}" in page.text
    assert "4 candidate texts read" in page.text
    assert re.search(r"model <code>fake-v1-pixelgrid16-wordhash</code>", page.text)
    assert 'name="reuse" value="' in page.text and 'src="data:image/jpeg;base64,' in page.text


def test_category_scores_and_tiers_are_the_pipelines(fake_client):
    page = fake_client.post(
        "/matcher",
        files={"image": ("gun.png", png_of("a photo of a gun"), "image/png")},
        data={"texts": ""},
    )
    assert page.status_code == 200
    weapons = page.text.split('id="category-weapons"')[1].split("</tr>")[0]
    assert "1.0000" in weapons and "extreme" in weapons and "fake_cosine" in weapons
    assert "a photo of a gun" in weapons and "(preset)" in weapons
    assert re.search(r">extreme</strong>\s*· review_now · set by weapons", page.text)
    assert 'class="tier-clear"' in page.text  # the other categories stay clear
    assert "No candidate texts" in page.text


def test_an_active_db_threshold_version_sets_the_tier(sqlite_url, dashboard_factory):
    engine = make_engine(sqlite_url)
    with make_sessionmaker(engine).begin() as session:
        version = append_version(
            session, category="weapons", policy="content_safety", scale="fake_cosine",
            cutoffs={RiskTier.WARNING: 0.5, RiskTier.MEDIUM: 0.95, RiskTier.HIGH: 1.5,
                     RiskTier.EXTREME: 2.0},
            strategy="manual", reason="test", created_by="test",
        )  # fmt: skip
    engine.dispose()
    with DashboardClient(dashboard_factory(sqlite_url, backend="fake")) as client:
        page = client.post("/matcher", files={"image": ("gun.png", png_of("a gun"), "image/png")})
    weapons = page.text.split('id="category-weapons"')[1].split("</tr>")[0]
    assert "medium" in weapons and f"(version #{version.id})" in weapons


def test_changed_texts_reuse_the_previous_image(fake_client):
    first = fake_client.post(
        "/matcher", files={"image": ("bike.png", png_of("a red bicycle"), "image/png")}
    )
    sha = re.search(r'name="reuse" value="([0-9a-f]{64})"', first.text).group(1)
    again = fake_client.post("/matcher", data={"texts": "a red car\na red bicycle", "reuse": sha})
    assert again.status_code == 200
    assert [t for t, *_ in rows(again.text)] == ["a red bicycle", "a red car"]
    gone = fake_client.post("/matcher", data={"texts": "a cat", "reuse": "0" * 64})
    assert gone.status_code == 422 and "upload it again" in gone.text
    assert "a cat" in gone.text  # the typed texts are kept


def test_the_classifier_default_explains_and_still_scores_the_image(sqlite_url, dashboard_factory):
    with DashboardClient(dashboard_factory(sqlite_url)) as client:  # backend open_nsfw
        assert "MODERATION_BACKEND=gme" in client.get("/matcher").text
        page = client.post(
            "/matcher",
            files={"image": ("bike.png", png_of("a red bicycle"), "image/png")},
            data={"texts": "a cat\na red bicycle"},
        )
    assert page.status_code == 200
    assert "Free-text matching needs an embedding backend" in page.text
    assert "MODERATION_BACKEND=gme" in page.text and "MODERATION_GME_PATH" in page.text
    assert rows(page.text) == []
    sexual = page.text.split('id="category-sexual"')[1].split("</tr>")[0]
    assert "probability" in sexual and re.search(r">0\.\d{4}<", sexual)
    assert re.search(r"model <code>open-nsfw-onnx-", page.text)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (png_of("a gun")[:200], "truncated"),  # truncated mid-stream
        (b"not an image at all", "not_an_image"),
        (b"", "empty"),
    ],
)
def test_a_bad_upload_is_an_inline_error_with_its_reason(fake_client, payload, reason):
    page = fake_client.post(
        "/matcher", files={"image": ("x.png", payload, "image/png")}, data={"texts": "a cat"}
    )
    assert page.status_code == 422
    errors = page.text.split('id="errors"')[1].split("</section>")[0]
    assert f"x.png: {reason}:" in errors
    assert "a cat" in page.text and rows(page.text) == []


def test_an_upload_over_the_limit_is_refused(sqlite_url, dashboard_factory):
    app = dashboard_factory(sqlite_url, backend="fake", max_upload_bytes=2048)
    big = bytes(4096)
    with DashboardClient(app) as client:
        page = client.post("/matcher", files={"image": ("big.png", big, "image/png")})
        assert page.status_code == 422 and "big.png: too_large:" in page.text
        huge = client.post("/matcher", files={"image": ("huge.png", bytes(2 << 20), "image/png")})
    assert huge.status_code == 422  # refused from Content-Length, before the body is parsed
    assert "too_large" in huge.text and "MODERATION_MAX_UPLOAD_BYTES" in huge.text


def test_too_many_or_too_long_texts_are_refused_clearly(fake_client):
    many = "\n".join(f"text {i}" for i in range(MAX_TEXTS + 5))
    image = {"image": ("bike.png", png_of("a red bicycle"), "image/png")}
    page = fake_client.post("/matcher", files=image, data={"texts": many})
    assert page.status_code == 422
    assert f"{MAX_TEXTS + 5} candidate texts; at most {MAX_TEXTS} per match" in page.text
    long = fake_client.post("/matcher", files=image, data={"texts": "ok\n" + "w" * 1000})
    assert long.status_code == 422 and "line 2 has 1000 characters" in long.text


def test_missing_image_and_malformed_form_are_inline_errors(fake_client):
    page = fake_client.post("/matcher", data={"texts": "a cat"})
    assert page.status_code == 422 and "choose an image file" in page.text
    broken = fake_client.post(
        "/matcher", content=b"garbage", headers={"content-type": "multipart/form-data"}
    )
    assert broken.status_code == 422
    assert "the form could not be read: Missing boundary" in broken.text
    field = b'--b\r\nContent-Disposition: form-data; name="texts"\r\n\r\n' + b"x" * (300 << 10)
    oversized = fake_client.post(
        "/matcher",
        content=field + b"\r\n--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert oversized.status_code == 422 and "Part exceeded maximum size" in oversized.text


def test_an_unbuildable_backend_says_what_to_set(sqlite_url, dashboard_factory):
    with DashboardClient(dashboard_factory(sqlite_url, backend="gme")) as client:
        page = client.post(
            "/matcher", files={"image": ("bike.png", png_of("a red bicycle"), "image/png")}
        )
    assert page.status_code == 503 and "MODERATION_GME_PATH" in page.text


class BrokenScorer:
    """A ``ClassifierScorer``-shaped scorer whose model fails on every image."""

    model_id, catalog_version, categories = "broken-v1", "", ("sexual",)
    scales, severities, base_thresholds = {"sexual": "probability"}, {"sexual": 3}, {}

    def score_images(self, images):
        raise RuntimeError("the model ran out of memory")


def test_a_failing_model_is_reported_on_the_page(sqlite_url, dashboard_factory, settings_factory):
    app = dashboard_factory(sqlite_url)
    broken = Playground(settings_factory(database_url=sqlite_url), lambda s: BrokenScorer())
    app.state.dashboard = dataclasses.replace(app.state.dashboard, playground=broken)
    with DashboardClient(app) as client:
        page = client.post("/matcher", files={"image": ("b.png", png_of("a"), "image/png")})
    assert page.status_code == 500
    assert "scoring failed: the model ran out of memory" in page.text and "<form" in page.text


ANA_SECRET = "ana-secret-0123456789-0123456789-0123456789"


def test_the_page_needs_a_login_when_tokens_are_set(sqlite_url, dashboard_factory):
    app = dashboard_factory(sqlite_url, backend="fake", api_tokens=[f"ana:reviewer:{ANA_SECRET}"])
    with DashboardClient(app) as client:
        assert client.post("/matcher", data={"texts": "a"}).status_code == 401
        page = client.get("/matcher", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fmatcher"
        assert log_in(client, ANA_SECRET).status_code == 303
        assert client.get("/matcher").status_code == 200


def test_a_matcher_post_without_the_csrf_token_is_refused(sqlite_url, dashboard_factory):
    """Finding: ``POST /matcher`` had no origin check; it now needs the session's token."""
    with TestClient(dashboard_factory(sqlite_url, backend="fake")) as client:
        image = {"image": ("b.png", png_of("a"), "image/png")}
        assert client.post("/matcher", files=image, data={"texts": "a"}).status_code == 403
        wrong = client.post("/matcher", files=image, data={"texts": "a", "csrf_token": "x"})
        assert wrong.status_code == 403
        cross = client.post(
            "/matcher", files=image, data={"texts": "a"}, headers={"Origin": "https://evil.test"}
        )
        assert cross.status_code == 403


def test_bars_axis_and_widths():
    scaled, axis = bars([TextScore("a", 0.45, "very_high"), TextScore("b", -0.02, "none")])
    assert axis == 0.5 and [b.width for b in scaled] == [pytest.approx(90.0), 0.0]
    scaled, axis = bars([TextScore("a", 0.99, "very_high"), TextScore("b", 0.25, "medium")])
    assert axis == 1.0 and [b.width for b in scaled] == [pytest.approx(99.0), pytest.approx(25.0)]
    assert bars([]) == ([], 0.5)


def test_the_fake_backend_page_never_imports_torch(sqlite_url):
    code = f"""
import io, sys
from moderation.config import Settings
from moderation.embedders.fake import FakeEmbedder
from moderation.web.app import create_dashboard_app
from tests.dashboard_auth import DashboardClient
buffer = io.BytesIO()
FakeEmbedder.image_matching("a gun").save(buffer, "PNG")
app = create_dashboard_app(Settings(_env_file=None, database_url={sqlite_url!r}, backend="fake",
                                    allowed_hosts=["testserver"]), no_auth=True)
with DashboardClient(app) as client:
    page = client.post("/matcher", files={{"image": ("g.png", buffer.getvalue())}},
                       data={{"texts": "a gun"}})
assert page.status_code == 200, page.status_code
print([m for m in ("torch", "transformers") if m in sys.modules])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def tiny_gme_path(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random GME checkpoint in the real download's layout (see the embedder tests)."""
    pytest.importorskip("transformers")
    from tests.moderation.embedders.gme_fixture import build_tiny_gme

    directory = tmp_path_factory.mktemp("tiny-gme")
    build_tiny_gme(directory)
    return directory


def test_the_gme_backend_scores_texts_through_the_real_embedder(
    sqlite_url, dashboard_factory, tiny_gme_path
):
    app = dashboard_factory(sqlite_url, backend="gme", gme_path=tiny_gme_path, device="cpu")
    texts = ["a cat", "a red bicycle", "a dog on grass"]
    with DashboardClient(app) as client:
        page = client.post(
            "/matcher",
            files={"image": ("bike.png", png_of("a red bicycle"), "image/png")},
            data={"texts": "\n".join(texts)},
        )
    assert page.status_code == 200, page.text[-2000:]
    found = rows(page.text)  # random weights: any order, but sorted and every text present
    assert sorted(t for t, *_ in found) == sorted(texts)
    scores = [score for *_, score in found]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert re.search(r"model <code>gme", page.text) and 'id="category-weapons"' in page.text
