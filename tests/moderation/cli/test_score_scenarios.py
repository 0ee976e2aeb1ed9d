"""``moderation score`` with the seed's scenarios (subprocess): --match-text, --tags,
--context, the policy's action, confidence levels, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from moderation.embedders.fake import FakeEmbedder
from tests.moderation.cli.test_score import run_cli


def images(tmp_path: Path, *texts: str) -> list[str]:
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"{i:02d}.png"
        FakeEmbedder.image_matching(text).save(path)
        paths.append(str(path))
    return paths


def rows(result) -> list[dict]:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["results"]


def test_match_text_verdicts_and_the_ecommerce_action(tmp_path):
    shoe, cat = images(tmp_path, "red running shoes", "a cat")
    args = ["--backend", "fake", "--json", "--match-text", "red running shoes", shoe, cat]
    safety = rows(run_cli(*args, tmp_path=tmp_path))
    assert [r["match"]["verdict"] for r in safety] == ["accept", "reject"]
    assert [r["decision"]["action"] for r in safety] == ["allow", "allow"]
    assert "tags" not in safety[0]  # not asked, not the album policy
    shop = rows(
        run_cli(*args, tmp_path=tmp_path, MODERATION_POLICY="ecommerce", MODERATION_BACKEND="fake")
    )
    assert [r["decision"]["action"] for r in shop] == ["allow", "reject_listing"]
    assert {r["decision"]["policy"] for r in shop} == {"ecommerce"}

    table = run_cli(*[a for a in args if a != "--json"], tmp_path=tmp_path)
    assert (
        table.returncode == 0 and "accept (1.000)" in table.stdout and "confidence" in table.stdout
    )


def test_tags_by_flag_and_by_the_album_policy(tmp_path):
    (cat,) = images(tmp_path, "a cat")
    asked = rows(run_cli("--backend", "fake", "--json", "--tags", cat, tmp_path=tmp_path))
    assert asked[0]["tags"][0]["label"] == "cat"
    album = rows(
        run_cli(
            "--backend",
            "fake",
            "--json",
            cat,
            tmp_path=tmp_path,
            MODERATION_POLICY="album_tagging",
            MODERATION_BACKEND="fake",
        )
    )
    assert album[0]["tags"][0]["label"] == "cat"
    off = run_cli("--backend", "fake", "--json", "--no-tags", cat, tmp_path=tmp_path,
                  MODERATION_POLICY="album_tagging", MODERATION_BACKEND="fake")  # fmt: skip
    assert "tags" not in rows(off)[0]
    custom = run_cli("--backend", "fake", "--json", "--tags", cat, tmp_path=tmp_path,
                     MODERATION_TAG_LABELS="dog,bird")  # fmt: skip
    assert all(t["label"] in ("dog", "bird") for t in rows(custom)[0]["tags"])


def test_context_moves_the_match_cut_offs(tmp_path):
    (shoe,) = images(tmp_path, "red running shoes")
    args = ["--backend", "fake", "--json", "--match-text", "shoes", shoe]
    plain = rows(run_cli(*args, tmp_path=tmp_path))[0]["match"]
    strict = rows(run_cli(*args, "--context", "criticality=high", "--context",
                          "candidates=20", tmp_path=tmp_path))[0]  # fmt: skip
    assert plain["accept"] == 0.32
    assert strict["match"]["accept"] == 0.37  # +0.03 high criticality, +0.02 > 10 candidates
    assert strict["context"]["candidates"] == 20


def test_confidence_levels_against_the_runs_scores(tmp_path):
    words = ["cat", "dog", "tree", "car", "sea"]
    texts = [f"{a} {b}" for a in words for b in words][:20] + ["a photo of a gun"]
    result = rows(run_cli("--backend", "fake", "--json", *images(tmp_path, *texts),
                          tmp_path=tmp_path))  # fmt: skip
    assert result[-1]["scores"]["weapons"]["confidence"] == "high"
    levels = {s["confidence"] for r in result for s in r["scores"].values()}
    assert levels <= {"high", "medium", "low", "none"} and len(levels) >= 3

    few = rows(
        run_cli("--backend", "fake", "--json", *images(tmp_path, "a cat"), tmp_path=tmp_path)
    )
    assert {s["confidence"] for s in few[0]["scores"].values()} == {None}  # fewer than 20


def test_bad_scenario_options_and_policies_fail_clearly(tmp_path):
    (cat,) = images(tmp_path, "a cat")
    cases = [
        (["--match-text", "a cat", cat], {}, "embeds text"),  # open_nsfw default backend
        (["--backend", "fake", "--context", "mood=happy", cat], {}, "unknown context keys"),
        (["--backend", "fake", "--context", "criticality", cat], {}, "expected key=value"),
        (["--backend", "fake", "--context", "candidates=many", cat], {}, "integer"),
        (["--backend", "fake", "--match-text", "x" * 501, cat], {}, "longer than 500"),
        ([cat], {"MODERATION_POLICY": "nonsense_xyz"}, "album_tagging, content_safety, ecommerce"),
        ([cat], {"MODERATION_POLICY": "ecommerce"}, "needs a backend that embeds text"),
    ]
    for args, env, needle in cases:
        result = run_cli(*args, tmp_path=tmp_path, **env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr, result.stderr
