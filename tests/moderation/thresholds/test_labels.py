"""The labels CSV: column aliases, per-row references, and errors with line numbers."""

from __future__ import annotations

import pytest

from moderation.thresholds.labels import CalibrationError, read_labels

SHA = "ab" * 32


def _write(tmp_path, text: str):
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_name_images_by_job_id_sha256_or_path(tmp_path):
    path = _write(
        tmp_path,
        "Job ID,sha256,Image,Category,is_violation\n"
        f"7,,,weapons,1\n,{SHA.upper()},,weapons,no\n,,sub/x.png,gore,Violation\n",
    )
    rows = read_labels(path)
    assert [(r.line, r.kind, r.category, r.is_violation) for r in rows] == [
        (2, "job_id", "weapons", True),
        (3, "sha256", "weapons", False),
        (4, "path", "gore", True),
    ]
    assert rows[1].ref == SHA  # normalised to lower case
    assert rows[2].ref == str((tmp_path / "sub" / "x.png").resolve())  # relative to the CSV


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,category\nx.png,weapons\n", "header needs category, is_violation"),
        ("category,is_violation\nweapons,1\n", "header needs"),
        ("image,category,is_violation\n", "no label rows"),
        ("image,category,is_violation\nx.png,weapons,maybe\n", "line 2: is_violation 'maybe'"),
        ("image,category,is_violation\n,weapons,1\n", "line 2: no image reference"),
        ("image,category,is_violation\nx.png,,1\n", "line 2: empty category"),
        ("job_id,category,is_violation\nabc,weapons,1\n", "job_id 'abc' is not a positive"),
        ("sha256,category,is_violation\nxyz,weapons,1\n", "not 64 hex digits"),
    ],
)
def test_bad_labels_are_reported_with_line_numbers(tmp_path, text, message):
    with pytest.raises(CalibrationError, match=message):
        read_labels(_write(tmp_path, text))


def test_every_bad_row_is_counted(tmp_path):
    bad = "".join(f"x{i}.png,weapons,perhaps\n" for i in range(8))
    with pytest.raises(CalibrationError, match=r"line 6: .*\(and 3 more\)"):
        read_labels(_write(tmp_path, "image,category,is_violation\n" + bad))


def test_unreadable_file(tmp_path):
    with pytest.raises(CalibrationError, match="cannot read labels file"):
        read_labels(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CalibrationError, match="cannot read labels file"):
        read_labels(tmp_path / "bin.csv")
