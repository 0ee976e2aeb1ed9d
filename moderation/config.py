"""Runtime settings: one typed ``Settings`` read from ``MODERATION_*`` env vars and ``.env``."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from moderation.thresholds.presets import DEFAULT_TAG_LABELS, policy_named

__all__ = [
    "ROLES",
    "ApiToken",
    "Role",
    "Settings",
    "default_database_url",
    "get_settings",
    "masked_url",
]

Role = Literal["submitter", "reviewer", "admin"]
ROLES: tuple[str, ...] = ("submitter", "reviewer", "admin")


def default_data_dir() -> Path:
    """Per-user data directory (e.g. ``~/.local/share/moderation``)."""
    return Path(platformdirs.user_data_dir("moderation", appauthor=False))


def default_database_url() -> str:
    """The embedded default: a SQLite file under the user's data dir."""
    return f"sqlite:///{default_data_dir() / 'moderation.sqlite3'}"


class ApiToken:
    """One bearer token from settings: ``name:role:secret``."""

    __slots__ = ("name", "role", "secret")

    def __init__(self, name: str, role: str, secret: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} for token {name!r}; expected one of {ROLES}")
        if len(secret) < 16:
            raise ValueError(f"token {name!r} is too short: use at least 16 characters")
        self.name, self.role, self.secret = name, role, secret

    def __repr__(self) -> str:
        return f"ApiToken(name={self.name!r}, role={self.role!r}, secret='***')"


class Settings(BaseSettings):
    """Every knob of the system, with its default. Env prefix ``MODERATION_``."""

    model_config = SettingsConfigDict(
        env_prefix="MODERATION_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage -------------------------------------------------------------------------
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL. postgresql+psycopg://… in production; SQLite file by default.",
    )
    db_pool_size: int = Field(10, ge=1, description="Connection pool size (Postgres).")
    db_echo: bool = Field(False, description="Log every SQL statement.")

    # --- broker / workers ----------------------------------------------------------------
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis).")
    queue_name: str = Field("moderation.score", description="Celery queue the scorers consume.")
    broker_key_prefix: str = Field("", description="Prefix for every Redis key (isolation).")
    batch_size: int = Field(16, ge=1, le=1024, description="Images per model forward.")
    max_wait_ms: int = Field(50, ge=0, description="Longest wait to fill a micro-batch.")
    max_attempts: int = Field(3, ge=1, description="Deliveries before a job is quarantined.")
    job_visibility_timeout_s: int = Field(
        3600, ge=60, description="Redis redelivery delay for unacked jobs."
    )
    stale_claim_s: int = Field(
        600, ge=10, description="A job 'processing' longer than this is requeued by the reaper."
    )
    reuse_scores: bool = Field(
        True, description="Reuse scores of an image already scored by the same model+catalog."
    )
    ops_queue_name: str = Field(
        "moderation.ops", description="Celery queue for callbacks and maintenance tasks."
    )
    batch_soft_time_limit_s: int = Field(
        300, ge=1, description="Soft time limit of one scoring batch (raises in the worker)."
    )
    batch_time_limit_s: int = Field(
        360, ge=1, description="Hard time limit of one scoring batch (the child is killed)."
    )
    worker_max_memory_mb: int = Field(
        8192, ge=0, description="Replace a worker child above this resident memory (0 = never)."
    )
    reaper_interval_s: int = Field(
        30, ge=1, description="How often beat runs the reaper of stale claims and lost messages."
    )
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Prometheus /metrics port of the first scoring worker; each further worker "
        "process of `moderation worker` takes the next port (0 = no worker metrics).",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Bind address of the scoring workers' metrics ports."
    )
    rollup_interval_s: int = Field(
        300, ge=0, description="How often beat refreshes the dashboard rollups (0 = never)."
    )
    rollup_settle_hours: float = Field(
        48.0,
        ge=0,
        description="Rolled hours recomputed by each rollup refresh (late second reviews).",
    )

    # --- model ---------------------------------------------------------------------------
    backend: str = Field(
        "open_nsfw",
        description="Scoring backend, a name in moderation.embedders.registry: open_nsfw "
        "(embedded default), gme, fake.",
    )
    gme_path: Path | None = Field(
        None, description="Local directory with GME-Qwen2-VL weights (never downloaded)."
    )
    device: str = Field("auto", description="torch device for GME: auto, cpu, cuda, cuda:N.")
    classifiers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Classifiers run beside an embedding backend (gme, fake), e.g. open_nsfw.",
    )
    catalog_file: Path | None = Field(
        None, description="Violation catalog YAML; default: the packaged catalog."
    )
    pattern_cache_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "pattern-cache",
        description="This host's cache of pattern vectors (the database is the shared one).",
    )

    # --- policy --------------------------------------------------------------------------
    policy: str = Field(
        "content_safety",
        description="Named policy: content_safety, ecommerce or album_tagging (docs/policies.md).",
    )
    tag_labels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_TAG_LABELS),
        description="Album-tagging vocabulary (comma-separated): the labels a job's tags are "
        "chosen from.",
    )
    thresholds_file: Path | None = Field(
        None,
        description="YAML of per-category thresholds overriding the preset "
        "(an active DB threshold version still wins).",
    )
    audit_fraction: float = Field(
        0.02, ge=0, le=1, description="Share of below-threshold items sampled for audit review."
    )
    review_lease_s: float = Field(
        900, gt=0, description="How long a reviewer's claim on a review item lasts (seconds)."
    )
    review_audit_max_wait_s: float = Field(
        3600,
        ge=0,
        description="Audit items older than this are claimed before queue items (seconds), "
        "so recall estimates do not starve behind a busy queue.",
    )
    adjuster: Literal["recall_target", "seed"] = Field(
        "recall_target",
        description="Threshold adjuster fed by reviews: recall_target (default) or seed.",
    )
    adjust_interval_s: float = Field(
        3600, ge=0, description="How often beat runs the threshold adjuster; 0 = never."
    )
    adjust_horizon_s: float = Field(
        30 * 86400, gt=0, description="Evidence window of the adjuster: items routed this recently."
    )
    recall_target: float = Field(
        0.95, gt=0, lt=1, description="Recall the recall_target adjuster holds (lower bound)."
    )
    adjust_profile_window_s: float = Field(
        86400,
        ge=60,
        description="The adjuster adjusts the categories and scales of the scorer profiles that "
        "workers and `moderation scan` registered this recently (seconds).",
    )
    adjust_unpin_min_audited: int = Field(
        1000,
        ge=0,
        description="Audited items routed since a pinned (hand-set) version that let the "
        "adjuster move it again; 0 = a pin holds until `moderation thresholds unpin`.",
    )

    # --- hash banks (PDQ) -----------------------------------------------------------------
    bank_match_threshold: int = Field(
        31, ge=0, le=63, description="Largest PDQ Hamming distance (of 256 bits) that matches."
    )
    bank_min_quality: int = Field(
        50,
        ge=0,
        le=100,
        description="PDQ quality below which a hash is neither banked nor matched.",
    )
    bank_match_flips: bool = Field(
        True, description="Also match an image's 7 rotations/mirrors against the banks."
    )
    bank_violation_mode: Literal["set_tier", "set_tier_and_score", "off"] = Field(
        "set_tier",
        description="Confirmed-violation hit: set the tier and skip the model (set_tier), set a "
        "tier floor but still score (set_tier_and_score), or ignore the bank (off).",
    )
    bank_violation_tier: Literal["medium", "high", "extreme"] = Field(
        "high", description="Tier a confirmed-violation hit sets."
    )
    bank_benign_mode: Literal["skip_model", "record", "off"] = Field(
        "skip_model",
        description="Benign hit: tier clear without scoring (skip_model), record the hit but let "
        "the model decide (record), or ignore the bank (off).",
    )
    bank_refresh_s: float = Field(
        30.0, ge=0, description="How often a worker pulls new and disabled bank entries (s)."
    )
    bank_watch: bool = Field(
        True,
        description="Before each batch, compare the banks' version (max id, max change time: "
        "one indexed query) and reload at once when it moved, so a new, disabled or "
        "re-enabled entry applies to the very next batch; bank_refresh_s stays the safety net.",
    )
    bank_retro_days: int = Field(
        30,
        ge=0,
        description="When a bank entry is added or re-enabled, images stored in the last N days "
        "are matched against it and their jobs re-decided (retro-matching); 0 = off.",
    )
    bank_retro_sweep_s: float = Field(
        15.0,
        ge=0,
        description="How often the workers' beat starts retro-matching for bank entries added "
        "or re-enabled without a run (e.g. by a reviewer) and resumes unfinished runs (0: off).",
    )
    bank_crop_grid: int = Field(
        0,
        ge=0,
        le=5,
        description="Also bank the PDQ hashes of an n×n grid of trimmed windows of each banked "
        "image, and match them, so cropped copies match (0 = off; 3 → 9 extra hashes each).",
    )
    bank_crop_keep: float = Field(
        0.96,
        gt=0.5,
        lt=1.0,
        description="Side fraction of those windows: a window catches crops of about "
        "1 − keep (0.96: 2–5 % crops).",
    )

    # --- images --------------------------------------------------------------------------
    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024, description="Largest accepted file.")
    max_image_pixels: int = Field(
        64_000_000, ge=1024, description="Decompression-bomb guard (width × height)."
    )
    decode_pixels: int = Field(
        2048 * 2048,
        ge=1024 * 1024,  # images.NEEDED_PIXELS: what GME takes (1280 tokens × 28² ≈ 1.0 MP)
        description="Larger images are decoded reduced to at most this many pixels.",
    )
    max_frames: int = Field(
        32,
        ge=1,
        le=1000,
        description="Frames of an animated image (GIF, WebP, APNG) decoded, hashed and scored; "
        "longer animations are sampled evenly (first and last frame included). 1 = first only.",
    )

    # --- API -----------------------------------------------------------------------------
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens as name:role:secret (comma-separated or JSON list).",
    )
    api_host: str = Field("127.0.0.1", description="Bind address of `moderation api`.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port of `moderation api`.")
    max_request_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, description="Largest accepted HTTP request body."
    )
    max_batch_jobs: int = Field(256, ge=1, description="Most images in one batch submission.")
    api_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL the client and `moderation submit` use."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token (the secret part) the client and `moderation submit` send."
    )
    dashboard_host: str = Field("127.0.0.1", description="Bind address of `moderation dashboard`.")
    dashboard_port: int = Field(8050, ge=1, le=65535, description="Port of `moderation dashboard`.")
    callback_min_tier: str = Field("high", description="Lowest tier that triggers a callback.")
    callback_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts/CIDRs allowed as callback targets even if private."
    )
    callback_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key signing callback bodies (X-Moderation-Signature)."
    )
    callback_timeout_s: float = Field(10.0, gt=0, description="Timeout of one callback POST.")
    callback_max_attempts: int = Field(
        5, ge=1, description="Callback POSTs tried (exponential backoff) before giving up."
    )

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"cannot parse database URL {masked_url(value)!r}") from exc
        return value

    @field_validator("policy")
    @classmethod
    def _policy_known(cls, value: str) -> str:
        policy_named(value)  # raises naming every policy
        return value

    @field_validator("tag_labels", mode="after")
    @classmethod
    def _tag_labels_usable(cls, value: list[str]) -> list[str]:
        labels = list(dict.fromkeys(v.strip() for v in value if v.strip()))
        if not labels:
            raise ValueError("tag_labels needs at least one label")
        return labels

    @field_validator("api_tokens", "callback_allowlist", "classifiers", "tag_labels", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]

    @field_validator("backend")
    @classmethod
    def _backend_registered(cls, value: str) -> str:
        from moderation.embedders.registry import backend_names

        if value not in backend_names():
            raise ValueError(f"unknown backend {value!r}; one of {', '.join(backend_names())}")
        return value

    @field_validator("classifiers", mode="after")
    @classmethod
    def _classifiers_registered(cls, value: list[str]) -> list[str]:
        from moderation.embedders.registry import classifier_names

        unknown = [name for name in value if name not in classifier_names()]
        if unknown:
            raise ValueError(f"unknown classifiers {unknown}; one of {classifier_names()}")
        return value

    @field_validator("api_tokens", mode="after")
    @classmethod
    def _tokens_well_formed(cls, value: list[SecretStr]) -> list[SecretStr]:
        _parse_tokens(value)
        return value

    @model_validator(mode="after")
    def _policy_fits_backend(self) -> Settings:
        from moderation.embedders.registry import EMBEDDERS

        if policy_named(self.policy).needs_text and self.backend not in EMBEDDERS:
            raise ValueError(
                f"policy {self.policy} compares images with texts: it needs a backend that "
                f"embeds text ({', '.join(sorted(EMBEDDERS))}), not {self.backend}"
            )
        return self

    @model_validator(mode="after")
    def _time_limits_ordered(self) -> Settings:
        # A batch still running when Redis redelivers its messages would be scored twice over.
        if (
            not self.batch_soft_time_limit_s
            < self.batch_time_limit_s
            < self.job_visibility_timeout_s
        ):
            raise ValueError(
                "need batch_soft_time_limit_s < batch_time_limit_s < job_visibility_timeout_s"
            )
        if self.stale_claim_s <= self.batch_time_limit_s:
            # otherwise the reaper would requeue batches that are still legitimately running
            raise ValueError("need stale_claim_s > batch_time_limit_s")
        return self

    def parsed_tokens(self) -> list[ApiToken]:
        """Tokens as (name, role, secret)."""
        return _parse_tokens(self.api_tokens)

    def masked(self) -> dict[str, Any]:
        """Effective settings as plain values with secrets replaced by ``***``."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in ("database_url", "broker_url"):
                value = masked_url(value)
            elif name == "api_tokens":
                value = [_mask_token(t.get_secret_value()) for t in value]
            elif isinstance(value, SecretStr):
                value = "***"
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out


def _parse_tokens(raw_tokens: list[SecretStr]) -> list[ApiToken]:
    tokens = []
    for raw in raw_tokens:
        parts = raw.get_secret_value().split(":", 2)
        if len(parts) != 3:
            raise ValueError("each API token must look like name:role:secret")
        tokens.append(ApiToken(*parts))
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ValueError("API token names must be unique")
    return tokens


def _mask_token(raw: str) -> str:
    parts = raw.split(":", 2)
    return f"{parts[0]}:{parts[1]}:***" if len(parts) == 3 else "***"


def masked_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "***"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import time)."""
    return Settings()
