"""Issue 17 through the real CLI on SQLite and PostgreSQL: hash-list import/export (round trip,
malformed lines, idempotent re-import, provenance) and retro-matching of past uploads when an
entry is added, imported or re-enabled (new decision version, old one kept, callbacks once)."""

from __future__ import annotations

import io
import json

from PIL import Image
from sqlalchemy import func, select
from typer.testing import CliRunner

from moderation.cli import app
from moderation.cli._common import CliError
from moderation.config import get_settings
from moderation.db.models import AuditLogEntry, BankEntry, Decision, DecisionHistory, Job
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import RiskTier
from moderation.hashbank.hashing import compute_pdq
from moderation.pipeline.batch import run_batch
from moderation.pipeline.intake import Submission, register_submissions
from tests.moderation.cli.runner import db_session, invoke, ok
from tests.synthetic_images import synthetic_photo

H1, H2, H3 = ("a" * 64), ("0123456789abcdef" * 4), ("f0" * 32)


def dark_photo(seed: int) -> Image.Image:
    """A photo dark enough that ColourScorer (mean red / green) scores it clear."""
    r, g, b = synthetic_photo(seed, (320, 240)).split()
    return Image.merge("RGB", (r.point(lambda v: v // 4), g.point(lambda v: v // 4), b))


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_export_round_trip_is_identical_in_both_formats(db_url, tmp_path):
    csv_text = (
        "hash,quality,bank,category,tags,source,added_at\n"
        f"{H1},90,confirmed_violation,sexual,csam;tx,ncmec-list,2026-11-01T10:00:00+00:00\n"
        f"{H2},,benign,,,local,2026-11-02T10:00:00+00:00\n"
    )
    ok("bank", "import", str(write(tmp_path, "list.csv", csv_text)), "--url", db_url, "--by", "ivy")
    exported = ok("bank", "export", "--url", db_url)
    assert exported == csv_text
    jsonl = ok("bank", "export", "--format", "jsonl", "--url", db_url)
    first = json.loads(jsonl.splitlines()[0])
    assert first == {
        "hash": H1, "quality": 90, "bank": "confirmed_violation", "category": "sexual",
        "tags": ["csam", "tx"], "source": "ncmec-list", "added_at": "2026-11-01T10:00:00+00:00",
    }  # fmt: skip
    out = tmp_path / "out.jsonl"
    ok("bank", "export", "--format", "jsonl", "-o", str(out), "--url", db_url)
    assert out.read_text() == jsonl
    # re-import (either format) adds nothing
    again = ok("bank", "import", str(out), "--url", db_url)
    assert "0 added, 2 already banked" in again
    with db_session(db_url) as s:
        rows = s.scalars(select(BankEntry).order_by(BankEntry.id)).all()
        assert len(rows) == 2
        assert (rows[0].source, rows[0].imported_by, rows[0].tags) == (
            "ncmec-list", "ivy", ["csam", "tx"]
        )  # fmt: skip
        assert rows[0].imported_at is not None
        actions = s.scalars(select(AuditLogEntry.action)).all()
        assert actions.count("bank.import") == 2  # one row per import, not per entry


def test_malformed_lines_are_reported_by_number_and_skipped(db_url, tmp_path):
    text = (
        "hash,quality,bank,category,tags,source,added_at\n"
        f"{H1},80,confirmed_violation,graphic_violence,,l,\n"
        "nothex,80,confirmed_violation,graphic_violence,,l,\n"
        f"{H2},80,benign,graphic_violence,,l,\n"
        f"{H3},900,confirmed_violation,graphic_violence,,l,\n"
        f"{H3},80,confirmed_violation,,,l,\n"
        f"{H2},80,benign,,,l,yesterday\n"
        f"{H3},70,confirmed_violation,graphic_violence,,l,\n"
        f"{H1},80,confirmed_violation,made_up,,l,\n"  # not a category of the catalog
    )
    result = invoke("bank", "import", str(write(tmp_path, "bad.csv", text)), "--url", db_url)
    assert result.exit_code != 0
    for line in (3, 4, 5, 6, 7, 9):
        assert f"bad.csv:{line}:" in result.output
    assert "bad.csv:9: category 'made_up' is not in the catalog" in result.output
    assert "bad.csv:2:" not in result.output and "bad.csv:8:" not in result.output
    assert "2 added" in result.output and "6 malformed lines" in result.output
    jsonl = f'{{"hash": "{H2}", "bank": "benign"}}\n{{not json\n[1]\n'
    result = invoke("bank", "import", str(write(tmp_path, "bad.jsonl", jsonl)), "--url", db_url)
    assert "bad.jsonl:2: not JSON" in result.output
    assert "bad.jsonl:3: not a JSON object" in result.output
    with db_session(db_url) as s:
        assert s.scalar(select(func.count()).select_from(BankEntry)) == 3


def _scored_copies(db_url: str, photo: Image.Image, n: int, callback: bool) -> list[int]:
    """``n`` re-encoded copies of ``photo`` submitted and scored (clear, with ColourScorer)."""
    from moderation.config import Settings
    from moderation.db.session import make_engine
    from moderation.pipeline.context import build_context
    from tests.fakes import ColourScorer

    engine = make_engine(db_url)
    settings = Settings(_env_file=None, database_url=db_url, bank_refresh_s=0)  # type: ignore[call-arg]
    ctx = build_context(settings, ColourScorer(), make_sessionmaker(engine), worker="t@h")
    try:
        payloads = []
        for i in range(n):
            buf = io.BytesIO()
            size = (photo.width - i, photo.height - i)
            photo.resize(size).save(buf, format="JPEG", quality=70 + i % 20)
            payloads.append(buf.getvalue())
        url = "https://hooks.example.com/x" if callback else None
        with session_scope(ctx.sessions) as s:
            ids = register_submissions(
                s, [Submission.from_bytes(p, callback_url=url) for p in payloads], utcnow()
            )
        for start in range(0, n, 16):
            run_batch(ctx, ids[start : start + 16])
        return ids
    finally:
        ctx.close()
        engine.dispose()


def _decisions(db_url: str, ids: list[int]) -> dict[int, tuple[str, int, str | None]]:
    with db_session(db_url) as s:
        rows = s.execute(
            select(Decision.job_id, Decision.tier, Decision.version, Decision.reason).where(
                Decision.job_id.in_(ids)
            )
        )
        return {r[0]: (RiskTier(r[1]).value, r[2], r[3]) for r in rows}


def test_banking_the_original_re_decides_every_past_copy_once(db_url, tmp_path, monkeypatch):
    photo = dark_photo(41)
    ids = _scored_copies(db_url, photo, 50, callback=True)
    before = _decisions(db_url, ids)
    assert all(RiskTier(t).rank < RiskTier.HIGH.rank for t, _, _ in before.values())
    path = tmp_path / "original.png"
    photo.save(path)
    out = ok("bank", "add", str(path), "-b", "confirmed_violation", "-c", "graphic_violence",
             "--url", db_url)  # fmt: skip
    assert "50 jobs re-decided" in out
    after = _decisions(db_url, ids)
    with db_session(db_url) as s:
        entry_id = s.scalar(select(BankEntry.id))
        assert set(after.values()) == {
            ("high", 2, f"retro_match: bank entry #{entry_id} "
             f"(confirmed_violation/graphic_violence) at distance {d}")
            for d in {int(r.split()[-1]) for _, _, r in after.values()}
        }  # fmt: skip
        history = s.scalars(select(DecisionHistory).where(DecisionHistory.job_id.in_(ids)))
        assert sorted((h.job_id, h.version, h.tier) for h in history) == [
            (j, 1, before[j][0]) for j in sorted(ids)
        ]
        states = s.scalars(select(Job.callback_state).where(Job.id.in_(ids))).all()
        assert set(states) == {"pending"}  # high crosses the default callback tier: due once
    # the shown job reflects it when the command returned
    monkeypatch.setenv("MODERATION_DATABASE_URL", db_url)
    get_settings.cache_clear()
    shown = CliRunner().invoke(app, ["jobs", "show", str(ids[0])], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    assert (view["tier"], view["decision_version"]) == ("high", 2)
    assert view["decision_reason"].startswith(f"retro_match: bank entry #{entry_id} ")
    # re-running (re-enable; a resumed run) decides nothing twice
    ok("bank", "disable", str(entry_id), "--url", db_url)
    again = ok("bank", "enable", str(entry_id), "--url", db_url)
    assert "0 jobs re-decided" in again
    assert _decisions(db_url, ids) == after
    with db_session(db_url) as s:
        assert s.scalar(select(func.count()).select_from(DecisionHistory)) == 50


def test_an_import_retro_matches_once_and_a_hash_of_a_past_upload_hits(db_url, tmp_path):
    photo = dark_photo(42)
    ids = _scored_copies(db_url, photo, 3, callback=False)
    pdq = compute_pdq(photo)
    text = f"hash,quality,bank,category\n{pdq.hex},{pdq.quality},confirmed_violation,sexual\n"
    text += "".join(f"{i:064x},80,confirmed_violation,sexual\n" for i in range(1, 200))
    out = ok("bank", "import", str(write(tmp_path, "l.csv", text)), "--url", db_url)
    assert "retro-match run #1:" in out and "3 jobs re-decided" in out
    assert {t for t, _, _ in _decisions(db_url, ids).values()} == {"high"}
    runs = ok("bank", "retro", "--url", db_url)
    assert "import:l.csv" in runs and "done" in runs


def test_sweep_retro_matches_an_entry_banked_without_a_run(db_url):
    """A reviewer's confirmation banks without a run; `bank retro --sweep` (beat's task on a
    deployment) finds the entry and re-decides the past copies."""
    from moderation.db.session import make_engine
    from moderation.domain import BankKind
    from moderation.hashbank.banks import bank_hash

    photo = dark_photo(43)
    ids = _scored_copies(db_url, photo, 4, callback=False)
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            bank_hash(s, bank=BankKind.CONFIRMED_VIOLATION, pdq=compute_pdq(photo),
                      added_by="reviewer:rita", category="violence")  # fmt: skip
    finally:
        engine.dispose()
    out = ok("bank", "retro", "--sweep", "--url", db_url)
    assert "1 runs, 4 jobs re-decided" in out and "sweep" in out
    assert {t for t, _, _ in _decisions(db_url, ids).values()} == {"high"}
    assert "0 runs, 0 jobs re-decided" in ok("bank", "retro", "--sweep", "--url", db_url)


def test_bank_add_refuses_a_category_the_catalog_does_not_have(db_url, tmp_path):
    path = tmp_path / "photo.png"
    synthetic_photo(7).save(path)
    result = invoke("bank", "add", str(path), "-b", "confirmed_violation", "-c", "made_up",
                    "--url", db_url)  # fmt: skip
    assert isinstance(result.exception, CliError)  # one line, exit 2 from the entry point
    assert "--category 'made_up' is not in the catalog" in str(result.exception)
    with db_session(db_url) as s:
        assert s.scalar(select(func.count()).select_from(BankEntry)) == 0
