"""Every misconfiguration is one line on stderr naming the setting, exit code 2, no traceback —
and, for ``scan``, found before any job is registered, so none is left ``processing``. A scan
that aborts anyway fails the jobs it registered with the cause. Database commands tell a
database that was never migrated from one that is unreachable, and all of them take --url."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from moderation.db import make_engine
from moderation.db.models import Job
from tests.fakes import png_bytes

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "COLUMNS": "200",
        "PYTHONPATH": str(ROOT),
        "MODERATION_PATTERN_CACHE_DIR": str(cwd / "pattern-cache"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "moderation", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300,
    )  # fmt: skip


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _jobs(url: str) -> dict[str, int]:
    """Jobs per status (none when the database or its tables were never made)."""
    engine = make_engine(url)
    try:
        if "jobs" not in inspect(engine).get_table_names():
            return {}
        with engine.connect() as conn:
            rows = conn.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        return {str(status): n for status, n in rows}
    finally:
        engine.dispose()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Good and bad configuration files, a folder of images to scan."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(png_bytes((80 * i, 20, 20)))
    out = {"folder": folder, "dir": tmp_path / "a-folder"}
    out["dir"].mkdir()
    for name, text in {
        "not_yaml": "categories: [\n",
        "not_a_catalog": "just a string\n",
        "wrong_thresholds": "weapons: {medium: nope}\n",
        "unknown_scale": "categories:\n  weapons:\n    scale: no_such_scale\n    base: 0.5\n",
    }.items():
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(text)
    return out


# id → (extra scan args, env, words the one line must contain); "{name}" → files[name]
SCAN_MISCONFIGURATIONS: dict[str, tuple[list[str], dict[str, str], list[str]]] = {
    "backend option unknown": (["--backend", "foo"], {}, ["'foo'", "open_nsfw", "gme", "fake"]),
    "backend env unknown": ([], {"MODERATION_BACKEND": "foo"}, ["MODERATION_BACKEND", "open_nsfw"]),
    "gme without weights": ([], {"MODERATION_BACKEND": "gme"}, ["MODERATION_GME_PATH"]),
    "gme weights dir missing": (
        [], {"MODERATION_BACKEND": "gme", "MODERATION_GME_PATH": "{dir}/none"}, ["not a directory"]
    ),
    "gme weights dir empty": (
        [], {"MODERATION_BACKEND": "gme", "MODERATION_GME_PATH": "{dir}"}, ["config.json"]
    ),
    "catalog missing": ([], {"MODERATION_CATALOG_FILE": "{dir}/none.yaml"},
                        ["MODERATION_CATALOG_FILE", "does not exist"]),
    "catalog is a folder": ([], {"MODERATION_CATALOG_FILE": "{dir}"},
                            ["MODERATION_CATALOG_FILE", "not a file"]),
    "catalog not yaml": ([], {"MODERATION_CATALOG_FILE": "{not_yaml}"},
                         ["MODERATION_CATALOG_FILE", "not valid YAML"]),
    "catalog not a catalog": ([], {"MODERATION_CATALOG_FILE": "{not_a_catalog}"},
                              ["MODERATION_CATALOG_FILE"]),
    "thresholds missing": ([], {"MODERATION_THRESHOLDS_FILE": "{dir}/none.yaml"},
                           ["MODERATION_THRESHOLDS_FILE", "does not exist"]),
    "thresholds is a folder": ([], {"MODERATION_THRESHOLDS_FILE": "{dir}"},
                               ["MODERATION_THRESHOLDS_FILE", "not a file"]),
    "thresholds not yaml": ([], {"MODERATION_THRESHOLDS_FILE": "{not_yaml}"},
                            ["MODERATION_THRESHOLDS_FILE"]),
    "thresholds wrong shape": ([], {"MODERATION_THRESHOLDS_FILE": "{wrong_thresholds}"},
                               ["MODERATION_THRESHOLDS_FILE", "categories"]),
    "thresholds unknown scale": ([], {"MODERATION_THRESHOLDS_FILE": "{unknown_scale}"},
                                 ["MODERATION_THRESHOLDS_FILE", "no_such_scale"]),
    "device unknown": ([], {"MODERATION_DEVICE": "tpu"}, ["MODERATION_DEVICE", "'tpu'", "cuda"]),
    "batch size zero": ([], {"MODERATION_BATCH_SIZE": "0"}, ["MODERATION_BATCH_SIZE"]),
    "database unreachable": (
        ["--url", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"], {}, ["unreachable"]
    ),
    "database url invalid": (["--url", "not a url"], {}, ["invalid database URL"]),
    "json and csv": (["--json", "--csv"], {}, ["--json", "--csv"]),
}  # fmt: skip


def _fill(value: str, files: dict[str, Path]) -> str:
    return value.format(**{k: str(v) for k, v in files.items()})


@pytest.mark.parametrize("case", list(SCAN_MISCONFIGURATIONS))
def test_a_scan_misconfiguration_is_one_line_and_leaves_no_job(case, files, tmp_path):
    args, env, words = SCAN_MISCONFIGURATIONS[case]
    db = f"sqlite:///{tmp_path / 'scan.sqlite3'}"
    url = [] if "--url" in args else ["--url", db]
    scan = ["scan", str(files["folder"]), "--backend", "fake", *url, *args]
    if "--backend" in args or "MODERATION_BACKEND" in env:
        scan.remove("--backend"), scan.remove("fake")
    result = _run(*scan, env={k: _fill(v, files) for k, v in env.items()}, cwd=tmp_path)
    line = _one_line(result)
    assert all(word in line for word in words), line
    assert _jobs(db) == {}  # found before any job was registered, let alone claimed


@pytest.mark.parametrize(
    "env",
    [
        {"MODERATION_THRESHOLDS_FILE": ""},
        {"MODERATION_CATALOG_FILE": " "},
        {"MODERATION_GME_PATH": ""},
    ],
    ids=["thresholds", "catalog", "gme_path"],
)
def test_an_empty_path_setting_is_unset(env, files, tmp_path):
    db = f"sqlite:///{tmp_path / 'scan.sqlite3'}"
    result = _run("scan", str(files["folder"]), "--backend", "fake", "--url", db, env=env,
                  cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _jobs(db) == {"scored": 3}


def test_workers_do_not_start_on_a_thresholds_file_that_does_not_parse(files, tmp_path):
    env = {"MODERATION_BACKEND": "fake", "MODERATION_THRESHOLDS_FILE": str(files["not_yaml"])}
    line = _one_line(_run("worker", "--cpu", "1", "--no-ops", env=env, cwd=tmp_path))
    assert "MODERATION_THRESHOLDS_FILE" in line and "starting" not in line


# Settings read by every command: each of these fails every command in one line.
OTHER_COMMANDS = [
    ["config", "show"],
    ["jobs", "failed"],
    ["bank", "list"],
    ["thresholds", "list"],
    ["tokens", "list"],
    ["db", "rollup"],
    ["score", "{folder}/0.png"],
]


@pytest.mark.parametrize("command", OTHER_COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    ("setting", "value"),
    [("MODERATION_DEVICE", "tpu"), ("MODERATION_THRESHOLDS_FILE", "{dir}"),
     ("MODERATION_CATALOG_FILE", "{dir}/none.yaml")],
)  # fmt: skip
def test_every_command_names_a_bad_setting_in_one_line(command, setting, value, files, tmp_path):
    db = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    env = {setting: _fill(value, files), "MODERATION_DATABASE_URL": db}
    line = _one_line(_run(*[_fill(a, files) for a in command], env=env, cwd=tmp_path))
    assert setting in line, line


DB_COMMANDS = [
    ["jobs", "failed"],
    ["jobs", "quarantined"],
    ["jobs", "show", "1"],
    ["jobs", "retry", "1"],
    ["jobs", "reap"],
    ["tokens", "list"],
    ["tokens", "add", "ci", "submitter"],
    ["tokens", "revoke", "ci"],
    ["bank", "list"],
    ["thresholds", "list"],
    ["thresholds", "adjust", "--dry-run"],
    ["db", "rollup"],
    ["calibrate", "{labels}"],
]


@pytest.mark.parametrize("command", DB_COMMANDS, ids=" ".join)
def test_database_commands_tell_not_migrated_from_unreachable(command, tmp_path, empty_pg_url):
    labels = tmp_path / "labels.csv"
    labels.write_text("category,is_violation,job_id\nsexual,1,1\n")
    argv = [a.format(labels=labels) for a in command]
    for url in (f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}", empty_pg_url):
        line = _one_line(_run(*argv, "--url", url, env={}, cwd=tmp_path))
        assert "not migrated" in line and "moderation db upgrade" in line, line
        assert "unreachable" not in line
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    line = _one_line(_run(*argv, "--url", unreachable, env={}, cwd=tmp_path))
    assert "database unreachable" in line, line


def test_an_aborted_scan_fails_its_unfinished_jobs_with_the_cause(tmp_path, sqlite_url):
    """Past the checks, a run can still stop (here the thresholds file turns bad under it):
    the jobs it registered end ``failed`` with ``scan_aborted`` and the cause."""
    from moderation.config import Settings
    from moderation.db.session import make_sessionmaker
    from moderation.pipeline.scan import find_files, scan_paths
    from moderation.scoring.scorers import build_scorer
    from moderation.thresholds.overrides import ThresholdsFileError

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.png").write_bytes(png_bytes((40 * i, 9, 9)))
    bad = tmp_path / "thresholds.yaml"
    bad.write_text("categories: [\n")
    settings = Settings(
        _env_file=None,
        database_url=sqlite_url,
        backend="fake",
        batch_size=2,
        pattern_cache_dir=tmp_path / "cache",
    ).model_copy(update={"thresholds_file": bad})  # as if it broke after the checks
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(ThresholdsFileError):
            scan_paths(
                settings,
                build_scorer(settings),
                make_sessionmaker(engine),
                find_files(folder).entries,
            )
        with engine.connect() as conn:
            rows = conn.execute(select(Job.status, Job.error_code, Job.error)).all()
    finally:
        engine.dispose()
    assert len(rows) == 5
    assert {(str(s), c) for s, c, _e in rows} == {("failed", "scan_aborted")}
    assert all("thresholds file" in e for _s, _c, e in rows)
