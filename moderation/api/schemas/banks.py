"""Request and response models of the bank API: add an entry, look a hash or an image up."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moderation.domain import BankKind

from .common import CleanStr

__all__ = ["BankAddIn", "BankAddOut", "BankHitOut", "BankMatchIn", "BankMatchOut", "BankVerdict"]

PdqHex = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="A PDQ hash: 64 hex digits.")
]
Quality = Annotated[
    int,
    Field(
        ge=0,
        le=100,
        description="The hash's PDQ quality (with ``hash``; default 100). Hashes below "
        "MODERATION_BANK_MIN_QUALITY are never banked or matched.",
    ),
]
Base64Image = Annotated[
    str,
    Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9+/=\s]*$",
        description="The image file, base64-encoded (MODERATION_MAX_UPLOAD_BYTES applies).",
    ),
]
_ONE_OF = "exactly one of hash and image_base64"
_H = "f" * 16 + "0" * 16 + "a5" * 16


class _HashOrImage(BaseModel):
    hash: PdqHex | None = None
    quality: Quality = 100
    image_base64: Base64Image | None = None

    @model_validator(mode="after")
    def _one(self) -> _HashOrImage:
        if (self.hash is None) == (self.image_base64 is None):
            raise ValueError(_ONE_OF)
        return self


class BankAddIn(_HashOrImage):
    """Bank a PDQ ``hash`` or an image (hashed here, with its crop windows): exactly one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "bank": "confirmed_violation",
                    "category": "sexual",
                    "hash": _H,
                    "quality": 90,
                    "reason": "NCMEC list 2026-11",
                },
                {"bank": "benign", "image_base64": "iVBORw0KGgo…", "reason": "house logo"},
            ]
        },
    )
    bank: BankKind
    category: Annotated[
        str | None,
        Field(
            pattern=r"^[a-z][a-z0-9_]{0,63}$",
            description="A catalog category: required for confirmed_violation, none for benign.",
        ),
    ] = None
    reason: Annotated[CleanStr | None, Field(min_length=1, max_length=2000)] = None


class BankAddOut(BaseModel):
    outcome: Literal["added", "duplicate"] = Field(
        description="added (201), or duplicate: an enabled entry with this hash is already in "
        "the bank and category (200; that entry's id)."
    )
    entry_id: int
    pdq_hash: str
    quality: int
    retro_run: dict[str, object] | None = Field(
        None, description="The retro-matching run queued for a new entry (past uploads)."
    )


class BankMatchIn(_HashOrImage):
    """Look up a PDQ ``hash`` or an image (hashed as workers hash uploads): exactly one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"hash": _H, "quality": 90, "top": 3}, {"image_base64": "/9j/4AAQ…"}]
        },
    )
    top: Annotated[int, Field(ge=1, le=100, description="Nearest entries returned.")] = 5


class BankHitOut(BaseModel):
    entry_id: int
    bank: BankKind
    category: str | None
    distance: int = Field(description="Hamming distance (0–256).")
    variant: str = Field(description="Which flip / crop window matched, e.g. original, crop3.")
    within_threshold: bool
    reason: str | None


class BankVerdict(BaseModel):
    bank: BankKind
    category: str | None
    entry_id: int
    distance: int
    variant: str
    tier: str | None = Field(description="The tier a worker would set (None: recorded only).")
    skip_model: bool


class BankMatchOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pdq_hash": _H,
                    "quality": 90,
                    "threshold": 31,
                    "nearest": [
                        {
                            "entry_id": 7,
                            "bank": "confirmed_violation",
                            "category": "sexual",
                            "distance": 4,
                            "variant": "original",
                            "within_threshold": True,
                            "reason": "NCMEC list 2026-11",
                        }
                    ],
                    "match": {
                        "bank": "confirmed_violation",
                        "category": "sexual",
                        "entry_id": 7,
                        "distance": 4,
                        "variant": "original",
                        "tier": "high",
                        "skip_model": True,
                    },
                }
            ]
        }
    )
    pdq_hash: str
    quality: int
    threshold: int = Field(description="MODERATION_BANK_MATCH_THRESHOLD.")
    nearest: list[BankHitOut]
    match: BankVerdict | None = Field(description="The verdict a worker would reach, or None.")
