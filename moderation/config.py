"""Runtime settings: one typed ``Settings`` read from ``MODERATION_*`` env vars and ``.env``."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from moderation.thresholds.presets import DEFAULT_TAG_LABELS, policy_named

__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "MIN_SECRET_CHARS",
    "ROLES",
    "ApiToken",
    "Role",
    "Settings",
    "default_database_url",
    "get_settings",
    "masked_url",
]

Role = Literal["submitter", "reviewer", "admin"]
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?|mps")
ROLES: tuple[str, ...] = ("submitter", "reviewer", "admin")
MIN_SECRET_CHARS = 32  # static token secrets and the dashboard's session secret
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")


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
        if not name:
            raise ValueError("MODERATION_API_TOKENS: a token has an empty name")
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(
                f"MODERATION_API_TOKENS: the secret of token {name!r} has {len(secret)} "
                f"characters; use at least {MIN_SECRET_CHARS} (e.g. `openssl rand -hex 24`)"
            )
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
    db_timeout_s: float = Field(
        2.0,
        ge=0.5,
        le=60,
        description="The API's bound on a database outage: pool wait, connect timeout and "
        "retries of one request; past it the request answers 503 with Retry-After.",
    )
    db_statement_timeout_s: float = Field(
        10.0,
        ge=0,
        description="Statement timeout of the API's connections, Postgres only (0 = none).",
    )

    # --- broker / workers ----------------------------------------------------------------
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis).")
    queue_name: str = Field("moderation.score", description="Celery queue the scorers consume.")
    broker_key_prefix: str = Field("", description="Prefix for every Redis key (isolation).")
    batch_size: int = Field(16, ge=1, le=1024, description="Images per model forward.")
    max_wait_ms: int = Field(50, ge=0, description="Longest wait to fill a micro-batch.")
    max_attempts: int = Field(3, ge=1, description="Deliveries before a job is quarantined.")
    job_visibility_timeout_s: int = Field(
        30,
        ge=10,
        description="Redis redelivers a message no live worker has refreshed for this long "
        "(each worker refreshes the messages it holds every sixth of it, so a long batch is "
        "never redelivered; a dead worker's messages come back after it).",
    )
    stale_claim_s: int = Field(
        120,
        ge=10,
        description="Last resort: an open job older than this (queued since its publish, "
        "processing since its claim) whose message is in no Redis list and no worker's unacked "
        "set is published again by the reaper. A held message proves the claim alive.",
    )
    broker_check_interval_s: float = Field(
        5.0,
        ge=0.5,
        description="How often the ops worker checks the broker: Redis restarted/lost its lists "
        "(republish what was in flight) and redelivered batches (their jobs back to queued).",
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
    device: str = Field("auto", description="torch device for GME: auto, cpu, cuda, cuda:N, mps.")
    gme_preprocessor: Literal["auto", "fast", "reference", "device"] = Field(
        "auto",
        description="GME image preprocessing: auto (device where GME runs on CUDA, else fast), "
        "fast (Pillow's exact bicubic vectorised with numba, numpy lookup tables), device "
        "(both resizes, rescale and patch layout in torch on GME's device, from the decoded "
        "pixels: the host CPU only decodes) or "
        "reference (transformers' Qwen2VLImageProcessorPil). fast and device give the "
        "reference's pixel_values bit for bit.",
    )
    forward_ahead: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Start the next batch's model forward while this batch is decided and "
        "committed: auto = where the model runs off the CPU (a GPU, or the fake backend's "
        "device time), on, off.",
    )
    fake_device_ms_per_image: float = Field(
        0.0,
        ge=0,
        le=10_000,
        description="Backend fake only: each image forward holds its batch this many ms, as a "
        "device would (GIL released, no CPU used), so the pipeline's overlap with model time "
        "can be measured without a GPU. 0 = no delay.",
    )
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
    action_rules_file: Path | None = Field(
        None,
        description="YAML of action rules ((category, tier, source) → allow, blur, "
        "age_restrict, hold, block or a custom action); an admin-set rule version in the DB "
        "wins, the packaged default applies without either (docs/actions.md).",
    )
    thresholds_file: Path | None = Field(
        None,
        description="YAML of per-category thresholds overriding the preset "
        "(an active DB threshold version still wins).",
    )
    audit_fraction: float = Field(
        0.02, ge=0, le=1, description="Share of below-threshold items sampled for audit review."
    )
    audit_design: Literal["per_image", "per_category"] = Field(
        "per_image",
        description="per_image: one audit draw per image (π = 1 − Π(1 − π_c)), every category "
        "labelled in the one review, about audit_fraction of the images drawn; per_category: "
        "each (image, category) drawn on its own at audit_fraction of its below-threshold "
        "items (the v1 design).",
    )
    review_lease_s: float = Field(
        900, gt=0, description="How long a reviewer's claim on a review item lasts (seconds)."
    )
    appeal_evidence_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of a decided appeal as a calibration label (appeals are not a "
        "random sample: never counted as audits).",
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
        50_000_000, ge=1024, description="Decompression-bomb guard (width × height)."
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
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the dashboard answers to (Host header; DNS-rebinding guard), "
        "comma-separated; empty: localhost, 127.0.0.1, ::1 and the bound host.",
    )
    session_secret: SecretStr | None = Field(
        None,
        description="Key signing the dashboard's session cookie (at least 32 characters); "
        "unset: a random key per process, so logins end at restart and differ per process.",
    )
    session_max_age_s: int = Field(
        8 * 3600, ge=60, description="A dashboard login lasts this long, then asks again."
    )
    session_https_only: bool = Field(
        False, description="Mark the dashboard's session cookie Secure (serve it over HTTPS)."
    )
    auth_max_failures: int = Field(
        10, ge=1, description="Failed logins / bad API tokens per client address and window."
    )
    auth_failure_window_s: float = Field(
        60.0, gt=0, description="Window of auth_max_failures; beyond it, 429 with Retry-After."
    )
    callback_min_tier: str = Field("high", description="Lowest tier that triggers a callback.")
    callback_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts/CIDRs allowed as callback targets even if private."
    )
    callback_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key signing callback bodies (X-Moderation-Signature)."
    )
    callback_timeout_s: float = Field(10.0, gt=0, description="Timeout of one callback POST.")
    callback_max_attempts: int = Field(
        2,
        ge=1,
        description="Callback POSTs tried in a row (sub-second backoff) per dispatch; a "
        "dispatch that fails is retried later on the schedule below.",
    )
    callback_retry_base_s: float = Field(
        30.0, gt=0, description="Wait after a callback's first failed dispatch (then doubled)."
    )
    callback_retry_cap_s: float = Field(
        3600.0, gt=0, description="Longest wait between two dispatches of one callback."
    )
    callback_max_age_s: float = Field(
        86400.0,
        gt=0,
        description="A callback not delivered this long after it became due is a dead letter "
        "(`moderation callbacks resend` sends it again).",
    )

    # storage by reference and the blob store (moderation.storage; docs/deploy.md)
    blob_store: str = Field(
        "db",
        description="Where directly uploaded bytes are kept: `db` (image_blobs, the default), "
        "`dir:/path` (a local directory) or `s3://bucket/prefix` (an S3-compatible bucket).",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph, ...); unset: AWS."
    )
    s3_region: str = Field("us-east-1", description="Region of the S3-compatible store.")
    s3_access_key_id: str | None = Field(None, description="Access key of the S3 store.")
    s3_secret_access_key: SecretStr | None = Field(None, description="Secret key of the S3 store.")
    s3_max_attempts: int = Field(
        5, ge=1, le=20, description="Tries of one S3 read (transient errors, backoff)."
    )
    image_uri_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Buckets `image_uri: s3://bucket/key` may name (comma-separated); "
        "empty: S3 references are refused.",
    )
    image_file_root: Path | None = Field(
        None,
        description="Directory `image_uri: file://` references must lie under (symlinks out "
        "of it refused); unset: file references are refused.",
    )
    retention_clear_days: int = Field(
        7, ge=0, description="Stored bytes of `clear` jobs are deleted after this many days."
    )
    retention_reviewed_days: int = Field(
        30, ge=0, description="Stored bytes of reviewed non-violations are deleted after this."
    )
    retention_batch_size: int = Field(
        500, ge=1, le=100_000, description="Images a retention run purges per transaction."
    )
    retention_interval_s: int = Field(
        3600, ge=0, description="Beat interval of the retention run (0: never by beat)."
    )

    @field_validator("blob_store")
    @classmethod
    def _blob_store_parses(cls, value: str) -> str:
        from moderation.storage.blobs import parse_blob_store

        parse_blob_store(value)  # raises naming the accepted forms
        return value.strip()

    @field_validator("image_file_root", mode="before")
    @classmethod
    def _empty_root_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"cannot parse database URL {masked_url(value)!r}") from exc
        return value

    @field_validator(
        "catalog_file", "thresholds_file", "action_rules_file", "gme_path", mode="before"
    )
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        # `MODERATION_THRESHOLDS_FILE=` would otherwise be Path("") — the current directory
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("pattern_cache_dir", mode="before")
    @classmethod
    def _empty_cache_dir_is_default(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return default_data_dir() / "pattern-cache"
        return value

    @field_validator("catalog_file", "thresholds_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        # that they parse is checked where they are read (catalog, thresholds resolver) and,
        # before any job is claimed, by the CLI (`moderation.cli._common.check_scoring_files`)
        if value is None:
            return None
        path = value.expanduser()
        if not path.exists():
            raise ValueError(f"{path} does not exist")
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        return path

    @field_validator("action_rules_file")
    @classmethod
    def _action_rules_parse(cls, value: Path | None) -> Path | None:
        # a broken rules file stops start-up with one line, not the first batch
        if value is None:
            return None
        from moderation.actions.rules import ActionRulesError, parse_rules_text

        path = cls._file_exists(value)
        try:
            parse_rules_text(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read ({exc})") from None
        except ActionRulesError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return path

    @field_validator("device")
    @classmethod
    def _device_known(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value.strip()):
            raise ValueError(f"unknown device {value!r}; one of auto, cpu, cuda, cuda:N, mps")
        return value.strip()

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

    @field_validator(
        "api_tokens", "allowed_hosts", "callback_allowlist", "classifiers", "tag_labels",
        "image_uri_buckets", mode="before",
    )  # fmt: skip
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

    @field_validator("session_secret", mode="after")
    @classmethod
    def _session_secret_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(
                f"MODERATION_SESSION_SECRET: use at least {MIN_SECRET_CHARS} characters"
            )
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
        # A running batch is never redelivered on a timeout: its worker refreshes the messages
        # it holds (``workers.delivery``), and the reaper leaves a claim whose message is held.
        if not self.batch_soft_time_limit_s < self.batch_time_limit_s:
            raise ValueError("need batch_soft_time_limit_s < batch_time_limit_s")
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
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"MODERATION_API_TOKENS: token names must be unique; repeated: {repeated}")
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
