"""``moderation scan`` accounts for every file of a folder: the bad-image corpus, names that lie,
an unreadable file, a FIFO — each gets a line in ``--json`` with a status and, when it failed,
a code and a reason; the scan finishes and exits 1."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from moderation.db import make_engine
from moderation.db.models import Job
from tests.fakes import noise_jpeg, png_bytes
from tests.moderation.test_images import encode, png_header_only
from tests.samples import BROKEN_DIR, sample_paths

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[3]


def _scan(
    folder: Path, *args: str, env: dict[str, str] | None = None, as_user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "COLUMNS": "200",
        "PYTHONPATH": str(ROOT),
        "HOME": str(folder.parent),
        "MODERATION_PATTERN_CACHE_DIR": str(folder.parent / "pattern-cache"),
        **(env or {}),
    }
    return subprocess.run(
        [*(as_user or []), sys.executable, "-m", "moderation", "scan", str(folder), *args],
        capture_output=True, text=True, env=full_env, timeout=300,
    )  # fmt: skip


def _json_lines(stdout: str) -> dict[str, dict]:  # type: ignore[type-arg]
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {Path(r["path"]).name: r for r in rows}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder another user can enter: the unreadable-file check runs as `nobody` when the
    tests run as root (root reads a chmod-000 file)."""
    top = Path(tempfile.mkdtemp(prefix="scan-every-file-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _as_unprivileged(top: Path) -> list[str] | None:
    """The command prefix that makes a chmod-000 file unreadable: none as a normal user; as
    root, `setpriv` to nobody (who then owns the work folder); None when impossible."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink() and path.name != "locked.jpg":
            os.chown(path, NOBODY, NOBODY)
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


# name → (bytes, expected status, expected error code or None)
def _corpus() -> dict[str, tuple[bytes, str, str | None]]:
    photo, other_photo = (p.read_bytes() for p in sample_paths()[:2])
    return {
        # the packaged broken samples
        "truncated.jpg": ((BROKEN_DIR / "truncated.jpg").read_bytes(), "failed", "truncated"),
        "not-an-image.jpg": ((BROKEN_DIR / "not-an-image.jpg").read_bytes(), "failed",
                             "not_an_image"),
        # the garbage of tests/moderation/test_images.py
        "empty.png": (b"", "failed", "empty"),
        "paper.png": (b"%PDF-1.7 not an image at all", "failed", "not_an_image"),
        "zeros.gif": (b"\x00" * 100, "failed", "not_an_image"),
        "header-only.gif": (b"GIF89a", "failed", "not_an_image"),
        "bomb.png": (png_header_only(100_000, 100_000), "failed", "too_many_pixels"),
        "icon.ico": (encode(Image.new("RGB", (8, 8)), "ICO"), "failed", "not_an_image"),
        "cut.jpg": (noise_jpeg()[:-600], "failed", "truncated"),
        "huge.jpg": (noise_jpeg((400, 400)) + b"\x00" * 300_000, "failed", "too_large"),
        # names that lie: the content decides
        "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "failed", "not_an_image"),
        "photo-without-suffix": (photo, "scored", None),
        "photo.jfif": (other_photo, "scored", None),
        "LICENSES.md": (b"# not an image\n", "failed", "not_an_image"),
        "ok.png": (png_bytes((200, 30, 30)), "scored", None),
    }  # fmt: skip


def test_every_file_of_the_folder_gets_a_status_and_broken_ones_a_reason(workdir: Path):
    folder = workdir / "photos"
    folder.mkdir()
    corpus = _corpus()
    for name, (data, _status, _code) in corpus.items():
        (folder / name).write_bytes(data)
    locked = folder / "locked.jpg"
    locked.write_bytes(png_bytes((1, 2, 3)))
    locked.chmod(0)
    os.mkfifo(folder / "pipe")  # opening it would block the scan for ever
    (folder / "dangling").symlink_to(folder / "gone.jpg")
    (folder / "sub").mkdir()  # not descended without -r: said so, not counted
    db = folder / "scan.sqlite3"  # the scan's own database lies in the folder: skipped
    user = _as_unprivileged(workdir)
    if user is None:
        pytest.skip("running as root without setpriv: a chmod-000 file stays readable")
    env = {"MODERATION_MAX_UPLOAD_BYTES": "200000"}
    result = _scan(folder, "--json", "--url", f"sqlite:///{db}", "--backend", "fake",
                   env=env, as_user=user)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    rows = _json_lines(result.stdout)
    expected = {
        **{name: (status, code) for name, (_data, status, code) in corpus.items()},
        "locked.jpg": ("failed", "unreadable"),
        "pipe": ("failed", "not_a_file"),
        "dangling": ("failed", "unreadable"),
    }
    assert {n: (r["status"], r["error_code"]) for n, r in rows.items()} == expected
    for name, row in rows.items():
        if row["status"] == "failed":
            assert row["error"], name  # a reason for every failure
            assert row["tier"] is None and row["categories"] == {}
        else:
            assert row["tier"] in {"clear", "warning", "medium", "high", "extreme"}
            assert row["categories"] and all("score" in c for c in row["categories"].values())
    # a job per file that could be read; none for what could not be opened
    no_job = {n for n, r in rows.items() if r["job_id"] is None}
    assert no_job == {"locked.jpg", "pipe", "dangling"}
    assert "exceeds the 50000000 limit" in rows["bomb.png"]["error"]
    assert "sub" not in rows and "sub: a subfolder (use --recursive)" in result.stderr
    assert "3 images scored, 15 files failed" in result.stderr
    # once it exists, the scan's own database (and its journals) is skipped, and said so
    again = _scan(folder, "--json", "--url", f"sqlite:///{db}", "--backend", "fake",
                  env=env, as_user=user)  # fmt: skip
    assert again.returncode == 1, again.stderr
    assert _json_lines(again.stdout).keys() == rows.keys()
    assert "scan.sqlite3: the scan's own database" in again.stderr
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    engine.dispose()
    assert statuses == {"scored": 6, "failed": 24}  # nothing left queued or processing


def test_csv_has_a_row_per_file_with_its_job(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes((10, 200, 10)))
    (folder / "b.txt").write_text("text")
    result = _scan(folder, "--csv", "--url", f"sqlite:///{tmp_path / 'db.sqlite3'}",
                   "--backend", "fake")  # fmt: skip
    assert result.returncode == 1, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(Path(r["path"]).name, r["status"], r["error_code"]) for r in rows] == [
        ("a.png", "scored", ""),
        ("b.txt", "failed", "not_an_image"),
    ]
    assert all(r["job_id"].isdigit() for r in rows)
    assert rows[0]["tier"] and any(k.endswith(":score") and rows[0][k] for k in rows[0])


def test_all_scored_is_exit_0_and_the_title_counts_images_and_failures(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(png_bytes((60 * i, 0, 0)))
    result = _scan(folder, "--url", f"sqlite:///{tmp_path / 'db.sqlite3'}", "--backend", "fake")
    assert result.returncode == 0, result.stderr
    assert "3 images scored, 0 files failed" in result.stdout
    assert "jobs 1–3" in result.stdout


@pytest.mark.parametrize(
    ("limit", "code", "quoted"),
    [
        ("300000000", {"truncated", "corrupt"}, None),
        ("200000000", {"too_many_pixels"}, "200000000"),
    ],
)
def test_the_configured_pixel_limit_decides_above_pillows_guard(tmp_path, limit, code, quoted):
    """A 225 MP image passes a 300 MP limit (Pillow's own guard is ~179 MP); the header-only
    file then fails as truncated. Under a 200 MP limit the reason quotes that limit."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "225mp.png").write_bytes(png_header_only(15_000, 15_000))
    env = {"MODERATION_MAX_IMAGE_PIXELS": limit}
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = _scan(folder, "--json", "--url", db, "--backend", "fake", env=env)
    [row] = _json_lines(result.stdout).values()
    assert row["error_code"] in code, row
    if quoted:
        assert f"exceeds the {quoted} limit" in row["error"]


def test_a_single_file_and_a_fifo_given_alone(tmp_path: Path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = _scan(pipe, "--json", "--url", db, "--backend", "fake")
    assert result.returncode == 1, result.stderr
    [row] = _json_lines(result.stdout).values()
    assert (row["status"], row["error_code"], row["job_id"]) == ("failed", "not_a_file", None)
    assert stat.S_ISFIFO(pipe.stat().st_mode)  # never opened, still there
