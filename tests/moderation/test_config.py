"""Settings: env prefix, .env file, token parsing, secrets masked in `config show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from moderation.config import Settings, default_database_url
from tests.moderation.cli.test_db import run_cli

TOKEN = "ops:admin:0123456789abcdef0123456789abcdefXYZ"


def test_defaults_are_embedded(monkeypatch):
    for key in ("MODERATION_DATABASE_URL", "MODERATION_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.database_url == default_database_url()
    assert s.database_url.startswith("sqlite:///")
    assert s.backend == "open_nsfw"


def test_env_prefix_and_dotenv(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("MODERATION_BATCH_SIZE=7\nMODERATION_BACKEND=gme\n")
    monkeypatch.setenv("MODERATION_BACKEND", "fake")  # real env beats .env
    s = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert s.batch_size == 7
    assert s.backend == "fake"


def test_tokens_comma_separated_and_json(monkeypatch):
    rev = "rev:reviewer:0123456789abcdef0123456789abcdefAAA"
    monkeypatch.setenv("MODERATION_API_TOKENS", f"{TOKEN},{rev}")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert [(t.name, t.role) for t in s.parsed_tokens()] == [("ops", "admin"), ("rev", "reviewer")]
    monkeypatch.setenv("MODERATION_API_TOKENS", json.dumps([TOKEN]))
    assert Settings(_env_file=None).parsed_tokens()[0].secret.endswith("XYZ")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "raw",
    [
        "nocolons",
        "a:superuser:0123456789abcdef0123456789abcdefXYZ",
        "a:admin:short",
        f"{TOKEN},{TOKEN}",
        ":admin:0123456789abcdef0123456789abcdefXYZ",
    ],
)
def test_malformed_tokens_are_refused(raw, monkeypatch):
    monkeypatch.setenv("MODERATION_API_TOKENS", raw)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_static_secrets_need_32_characters_in_one_line(monkeypatch):
    """Finding: static secrets needed only 16 characters (16…31 were accepted)."""
    monkeypatch.setenv("MODERATION_API_TOKENS", "ops:admin:" + "x" * 31)
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "MODERATION_API_TOKENS" in str(raised.value) and "at least 32" in str(raised.value)
    monkeypatch.setenv("MODERATION_API_TOKENS", "ops:admin:" + "x" * 32)
    assert Settings(_env_file=None).parsed_tokens()[0].name == "ops"  # type: ignore[call-arg]


def test_cli_names_the_variable_of_a_short_or_repeated_token():
    short = run_cli("config", "show", env={"MODERATION_API_TOKENS": "ops:admin:" + "x" * 20})
    assert short.returncode != 0
    assert "MODERATION_API_TOKENS" in short.stderr and "at least 32" in short.stderr
    twice = run_cli("config", "show", env={"MODERATION_API_TOKENS": f"{TOKEN},{TOKEN}"})
    assert twice.returncode != 0
    assert "MODERATION_API_TOKENS" in twice.stderr and "'ops'" in twice.stderr


def test_session_secret_needs_32_characters(monkeypatch):
    monkeypatch.setenv("MODERATION_SESSION_SECRET", "too-short")
    with pytest.raises(ValidationError, match="MODERATION_SESSION_SECRET"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_config_show_masks_secrets():
    env = {
        "MODERATION_DATABASE_URL": "postgresql+psycopg://app:hunter2secret@db:5432/mod",
        "MODERATION_BROKER_URL": "redis://:redispw@cache:6379/0",
        "MODERATION_API_TOKENS": TOKEN,
    }
    result = run_cli("config", "show", "--json", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert "hunter2secret" not in result.stdout and "redispw" not in result.stdout
    assert "0123456789abcdef" not in result.stdout
    assert shown["api_tokens"] == ["ops:admin:***"]
    assert shown["database_url"] == "postgresql+psycopg://app:***@db:5432/mod"
    table = run_cli("config", "show", env=env)
    assert table.returncode == 0 and "hunter2secret" not in table.stdout
    assert "MODERATION_DATABASE_URL" in table.stdout


def test_decode_pixels_default_and_floor_are_the_decoders(monkeypatch):
    from moderation.images import DEFAULT_WORKING_PIXELS, NEEDED_PIXELS

    assert Settings(_env_file=None).decode_pixels == DEFAULT_WORKING_PIXELS  # type: ignore[call-arg]
    monkeypatch.setenv("MODERATION_DECODE_PIXELS", str(NEEDED_PIXELS))
    assert Settings(_env_file=None).decode_pixels == NEEDED_PIXELS  # type: ignore[call-arg]
    monkeypatch.setenv("MODERATION_DECODE_PIXELS", str(NEEDED_PIXELS - 1))
    with pytest.raises(ValidationError, match="decode_pixels"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_policy_must_be_a_registered_name(monkeypatch):
    monkeypatch.setenv("MODERATION_BACKEND", "fake")
    for name in ("content_safety", "ecommerce", "album_tagging"):
        monkeypatch.setenv("MODERATION_POLICY", name)
        assert Settings(_env_file=None).policy == name  # type: ignore[call-arg]
    monkeypatch.setenv("MODERATION_POLICY", "nonsense_xyz")
    with pytest.raises(ValidationError, match="album_tagging, content_safety, ecommerce"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_unknown_policy_fails_at_start_up_with_the_names(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    result = subprocess.run(
        [sys.executable, "-m", "moderation", "config", "show"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**env, "MODERATION_POLICY": "nonsense_xyz"},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout
    assert "invalid MODERATION_POLICY" in result.stderr
    assert "album_tagging, content_safety, ecommerce" in result.stderr
    assert "Traceback" not in result.stderr


def test_tag_labels_are_comma_separated_and_not_empty(monkeypatch):
    monkeypatch.setenv("MODERATION_TAG_LABELS", "cat, dog ,cat")
    assert Settings(_env_file=None).tag_labels == ["cat", "dog"]  # type: ignore[call-arg]
    monkeypatch.setenv("MODERATION_TAG_LABELS", " , ")
    with pytest.raises(ValidationError, match="at least one label"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("policy", ["ecommerce", "album_tagging"])
def test_text_policies_need_a_backend_that_embeds_text(policy):
    with pytest.raises(ValidationError, match="embeds text"):
        Settings(_env_file=None, policy=policy, backend="open_nsfw")  # type: ignore[call-arg]
    assert Settings(_env_file=None, policy=policy, backend="fake").policy == policy  # type: ignore[call-arg]


def test_recovery_timings_need_not_exceed_the_batch_time_limit():
    """A held message proves a claim alive (workers re-stamp what they hold), so the stale-claim
    timeout and the visibility timeout may be far below the hard batch limit; the two batch
    limits must still be ordered."""
    settings = Settings(_env_file=None, stale_claim_s=60, job_visibility_timeout_s=30)  # type: ignore[call-arg]
    assert settings.stale_claim_s < settings.batch_time_limit_s
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.job_visibility_timeout_s <= 30 and defaults.db_timeout_s <= 2
    with pytest.raises(ValidationError, match="batch_soft_time_limit_s < batch_time_limit_s"):
        Settings(_env_file=None, batch_soft_time_limit_s=400, batch_time_limit_s=360)  # type: ignore[call-arg]
