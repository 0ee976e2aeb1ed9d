"""``moderation bank``: add/list/disable/enable/match through the real CLI on both backends."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from moderation.cli import app
from moderation.cli._common import CliError
from tests.moderation.cli.test_db import run_cli
from tests.synthetic_images import TRANSFORMS, flat_image, synthetic_photo


@pytest.fixture
def files(tmp_path):
    import numpy as np

    paths = {}
    for name, seed in (("a", 21), ("b", 22), ("other", 23)):
        paths[name] = tmp_path / f"{name}.png"
        synthetic_photo(seed, (400, 300)).save(paths[name])
    rng = np.random.default_rng(0)
    copy = TRANSFORMS["jpeg_q40"](synthetic_photo(22, (400, 300)), rng)
    paths["b_mirrored"] = tmp_path / "b_mirrored.jpg"
    copy.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(paths["b_mirrored"], quality=90)
    paths["flat"] = tmp_path / "flat.png"
    flat_image().save(paths["flat"])
    paths["junk"] = tmp_path / "junk.png"
    paths["junk"].write_bytes(b"\x89PNG not really")
    return paths


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bank_commands_end_to_end(db_url, files):
    """In-process (the subprocess path and its exit codes are covered below)."""
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, [*args, "--url", db_url], env={"COLUMNS": "200"})

    added = cli("bank", "add", str(files["a"]), str(files["b"]), "--bank",
                "confirmed_violation", "--category", "sexual", "--by", "alice")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout.count("added") == 2
    dup = cli("bank", "add", str(files["a"]), "-b", "confirmed_violation", "-c", "sexual")
    assert dup.exit_code == 0 and "duplicate" in dup.stdout

    entries = _json(cli("bank", "list", "--json"))
    assert [(e["bank"], e["category"], e["added_by"]) for e in entries] == [
        ("confirmed_violation", "sexual", "alice")
    ] * 2
    b_id = entries[0]["id"]  # newest first: b

    why = _json(cli("bank", "match", str(files["b_mirrored"]), "--json"))
    assert why["match"]["entry_id"] == b_id
    assert why["match"]["variant"] == "flip_h" and why["match"]["distance"] <= 31
    assert why["match"]["tier"] == "high" and why["match"]["skip_model"] is True
    assert why["nearest"][0]["reason"] == "added from file b.png"
    text = cli("bank", "match", str(files["b_mirrored"]))
    assert "MATCH confirmed_violation/sexual entry" in text.stdout and f"#{b_id}" in text.stdout

    assert _json(cli("bank", "match", str(files["other"]), "--json"))["match"] is None

    off = cli("bank", "disable", str(b_id), "--reason", "appeal upheld")
    assert off.exit_code == 0 and "disabled" in off.stdout
    assert _json(cli("bank", "match", str(files["b"]), "--json"))["match"] is None
    assert len(_json(cli("bank", "list", "--json"))) == 1
    listed = _json(cli("bank", "list", "--all", "--json"))
    assert [e["enabled"] for e in listed] == [False, True]

    assert cli("bank", "enable", str(b_id)).exit_code == 0
    assert _json(cli("bank", "match", str(files["b"]), "--json"))["match"]["distance"] == 0

    for args, message in (
        (("bank", "add", str(files["a"]), "-b", "benign", "-c", "x"), "no categories"),
        (("bank", "disable", "999"), "no bank entry with id 999"),
        (("bank", "match", str(files["junk"])), "not_an_image"),
    ):
        bad = cli(*args)
        assert isinstance(bad.exception, CliError) and message in str(bad.exception)


def test_bank_add_reports_bad_files_and_exits_2(sqlite_url, files, tmp_path):
    env = {"MODERATION_DATABASE_URL": sqlite_url}
    result = run_cli("bank", "add", str(files["a"]), str(files["flat"]), str(files["junk"]),
                     str(tmp_path / "missing.png"), "--bank", "benign", env=env)  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert "3 of 4 files were not banked" in result.stderr
    assert "quality 0 < 50" in result.stdout and "not_an_image" in result.stdout
    assert "cannot read" in result.stdout
    listed = run_cli("bank", "list", "--json", env=env)
    assert len(json.loads(listed.stdout)) == 1  # the good file landed
    bad = run_cli("bank", "add", str(files["a"]), "-b", "confirmed_violation", env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--category is required" in bad.stderr


def test_bank_help():
    for command in ("add", "list", "disable", "enable", "match"):
        result = CliRunner().invoke(app, ["bank", command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout
