"""``moderation score`` end to end (subprocess): real photos, JSON, bad files, bad config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from moderation.embedders.fake import FakeEmbedder
from tests.samples import BROKEN_DIR, sample_paths


def run_cli(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")},
        "COLUMNS": "200",
        "MODERATION_PATTERN_CACHE_DIR": str(tmp_path / "cache"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "moderation", "score", *args],
        capture_output=True, text=True, env=full_env, timeout=300, cwd=tmp_path,
    )  # fmt: skip


def test_scores_a_real_photo_with_the_embedded_default(tmp_path):
    photo = str(sample_paths()[0])
    result = run_cli(photo, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sexual" in result.stdout and "probability" in result.stdout
    assert "clear" in result.stdout and "1 scored, 0 failed" in result.stdout

    result = run_cli("--json", *map(str, sample_paths()), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "open_nsfw"
    assert report["model_id"].startswith("open-nsfw-onnx-")
    assert len(report["results"]) == len(sample_paths())
    for row in report["results"]:
        assert row["ok"] and row["decision"]["tier"] == "clear"
        sexual = row["scores"]["sexual"]
        assert 0.0 <= sexual["score"] < 0.2 and sexual["scale"] == "probability"


def test_bad_files_are_reported_per_file_with_a_nonzero_exit(tmp_path):
    args = [str(sample_paths()[0]), str(BROKEN_DIR / "truncated.jpg"),
            str(BROKEN_DIR / "not-an-image.jpg"), str(tmp_path / "missing.png")]  # fmt: skip
    result = run_cli("--json", *args, tmp_path=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)["results"]}
    assert rows[sample_paths()[0].name]["ok"]
    assert rows["truncated.jpg"]["error"]["code"] == "truncated"
    assert rows["not-an-image.jpg"]["error"]["code"] == "not_an_image"
    assert rows["missing.png"]["error"]["code"] == "not_found"
    assert "truncated.jpg: truncated" in result.stderr

    table = run_cli(*args, tmp_path=tmp_path)
    assert table.returncode == 1 and "1 scored, 3 failed" in table.stdout


def test_fake_backend_with_patterns_flags_a_built_image(tmp_path):
    catalog = tmp_path / "c.yaml"
    catalog.write_text(
        "name: t\ntemplates: ['a photo of {subject}', '{subject} in the image']\n"
        "categories:\n  weapons:\n    severity: 2\n    subjects: [a gun, a rifle]\n"
        "  drugs:\n    severity: 1\n    subjects: [pills, a syringe]\n"
    )
    built = tmp_path / "gun.png"
    FakeEmbedder.image_matching("a photo of a rifle").save(built)
    result = run_cli("--backend", "fake", "--patterns", str(catalog), "--json",
                     str(built), str(sample_paths()[0]), tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = json.loads(result.stdout)["results"]
    assert first["decision"] == {**first["decision"], "tier": "extreme", "category": "weapons"}
    assert first["scores"]["weapons"]["phrasing"] in {"a photo of a rifle", "a rifle in the image"}
    assert second["decision"]["tier"] == "clear"


def test_configuration_errors_are_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncategories:\n  weapons:\n    severity: 9\n")
    photo = str(sample_paths()[0])
    cases = [
        (("--backend", "fake", "--patterns", str(bad), photo), {}, "severity"),
        (("--backend", "gme", photo), {}, "MODERATION_GME_PATH"),
        (("--backend", "clip", photo), {}, "unknown backend"),
        ((photo,), {"MODERATION_BACKEND": "gme", "MODERATION_GME_PATH": str(tmp_path / "x")},
         "not a directory"),
    ]  # fmt: skip
    for args, env, message in cases:
        result = run_cli(*args, tmp_path=tmp_path, **env)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
