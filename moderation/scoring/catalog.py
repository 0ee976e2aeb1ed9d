"""The violation catalog: categories, severities and phrasings, parsed, validated and versioned."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

__all__ = [
    "DEFAULT_CATALOG_NAME",
    "default_catalog_text",
    "load_catalog",
    "FUSION_DIMENSIONS",
    "MIN_PHRASINGS",
    "Catalog",
    "CatalogError",
    "Category",
    "expand_templates",
    "parse_catalog",
    "catalog_from_mapping",
]

MIN_PHRASINGS = 4  # the seed's advice: several phrasings per pattern, scored by their max
SUBJECT = "{subject}"
CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # fits scores.category (String(64))
MAX_PHRASING_CHARS = 500

# Fusion dimensions an embedding scorer can really compute (SEED-DIGEST §5; the seed's
# "keyword" dimension was a stub returning 0.0 and is deliberately absent):
#   query  — phrasing embedded as a retrieval query (the GME recipe's instruction)
#   corpus — phrasing embedded like the images, with the default system prompt
FUSION_DIMENSIONS: tuple[str, ...] = ("query", "corpus")


class CatalogError(ValueError):
    """The catalog cannot be used; the message names the file and the offending field."""


@dataclass(frozen=True)
class Category:
    """One violation category with its expanded, de-duplicated phrasings."""

    name: str
    severity: int  # 1 (low) … 4 (critical)
    phrasings: tuple[str, ...]
    description: str = ""
    threshold: float | None = None  # base (violation) cut-off on the scorer's scale, if set


@dataclass(frozen=True)
class Catalog:
    """A validated catalog. ``version`` is the sha256 of its normalised scoring content."""

    name: str
    categories: tuple[Category, ...]  # sorted by name
    fusion: Mapping[str, float] = field(default_factory=dict)  # {} = query dimension only
    description: str = ""

    @property
    def version(self) -> str:
        """sha256 hex of ``normalised_content()`` as canonical JSON.

        Only what changes scores counts: categories, severities, thresholds, the expanded
        phrasings and fusion weights. Comments, key order, whitespace, descriptions and
        whether a phrasing was written literally or via a template do not.
        """
        canonical = json.dumps(
            self.normalised_content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def normalised_content(self) -> dict[str, Any]:
        """The scoring-relevant content as plain JSON-able data (also what the DB stores)."""
        return {
            "categories": [
                {
                    "name": c.name,
                    "severity": c.severity,
                    "threshold": c.threshold,
                    "phrasings": list(c.phrasings),
                }
                for c in self.categories
            ],
            "fusion": dict(sorted(self.fusion.items())),
        }

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    @property
    def severities(self) -> dict[str, int]:
        return {c.name: c.severity for c in self.categories}

    @property
    def thresholds(self) -> dict[str, float]:
        """Per-category base cut-offs the catalog sets (categories without one are absent)."""
        return {c.name: c.threshold for c in self.categories if c.threshold is not None}

    def pairs(self) -> list[tuple[str, str]]:
        """(category, phrasing) in matrix-column order: grouped by category, sorted by name."""
        return [(c.name, p) for c in self.categories for p in c.phrasings]


# --- schema (pydantic) -------------------------------------------------------------------


class _CategorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: StrictInt = Field(ge=1, le=4)
    description: str = ""
    subjects: list[str] = Field(default_factory=list)
    phrasings: list[str] = Field(default_factory=list)
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)


class _CatalogSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    templates: list[str] = Field(default_factory=list)
    fusion: dict[str, float] = Field(default_factory=dict)
    categories: dict[str, _CategorySpec] = Field(min_length=1)

    @field_validator("templates")
    @classmethod
    def _one_subject_slot(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if template.count(SUBJECT) != 1:
                raise ValueError(f"template {template!r} must contain {SUBJECT} exactly once")
        return templates

    @field_validator("fusion")
    @classmethod
    def _real_dimensions(cls, fusion: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(fusion) - set(FUSION_DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown fusion dimensions {unknown}; real ones: {FUSION_DIMENSIONS}")
        if any(not weight > 0 for weight in fusion.values()):
            raise ValueError("fusion weights must be positive")
        return fusion

    @field_validator("categories")
    @classmethod
    def _category_names(cls, categories: dict[str, _CategorySpec]) -> dict[str, _CategorySpec]:
        bad = [name for name in categories if not CATEGORY_NAME.match(name)]
        if bad:
            raise ValueError(f"category names must match {CATEGORY_NAME.pattern}: {bad}")
        return categories


# --- parsing -----------------------------------------------------------------------------


def _normalise_text(text: str) -> str:
    return " ".join(text.split())


def expand_templates(templates: list[str], subjects: list[str]) -> list[str]:
    """Every template with every subject (the seed's text variants), subjects outermost."""
    # str.replace rather than str.format: a subject containing braces stays literal
    return [t.replace(SUBJECT, s) for s in subjects for t in templates]


def _category(name: str, spec: _CategorySpec, templates: list[str]) -> Category:
    if spec.subjects and not templates:
        raise ValueError("has subjects but the catalog defines no templates")
    raw = expand_templates(templates, spec.subjects) + list(spec.phrasings)
    phrasings = list(dict.fromkeys(p for p in map(_normalise_text, raw) if p))
    too_long = [p for p in phrasings if len(p) > MAX_PHRASING_CHARS]
    if too_long:
        raise ValueError(f"phrasings longer than {MAX_PHRASING_CHARS} characters: {too_long}")
    if len(phrasings) < MIN_PHRASINGS:
        raise ValueError(f"needs at least {MIN_PHRASINGS} distinct phrasings, has {len(phrasings)}")
    return Category(
        name=name,
        severity=spec.severity,
        phrasings=tuple(phrasings),
        description=_normalise_text(spec.description),
        threshold=spec.threshold,
    )


def catalog_from_mapping(data: Any, *, source: str = "<catalog>") -> Catalog:
    """Validate already-parsed YAML/JSON data; raises ``CatalogError`` naming the bad field."""
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise CatalogError(f"{source}: expected a mapping at the top level, got {kind}")
    try:
        spec = _CatalogSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'catalog'}: {err['msg']}"
            for err in exc.errors()
        )
        raise CatalogError(f"{source}: {problems}") from None
    categories = []
    for name in sorted(spec.categories):
        try:
            categories.append(_category(name, spec.categories[name], spec.templates))
        except ValueError as exc:
            raise CatalogError(f"{source}: categories.{name}: {exc}") from None
    return Catalog(
        name=spec.name,
        categories=tuple(categories),
        fusion=dict(spec.fusion),
        description=_normalise_text(spec.description),
    )


def parse_catalog(text: str, *, source: str = "<catalog>") -> Catalog:
    """Parse and validate catalog YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    return catalog_from_mapping(data, source=source)


# --- catalog files -----------------------------------------------------------------------------

DEFAULT_CATALOG_NAME = "default_catalog.yaml"


def default_catalog_text() -> str:
    """The packaged default catalog's YAML."""
    return (
        resources.files("moderation.scoring")
        .joinpath(DEFAULT_CATALOG_NAME)
        .read_text(encoding="utf-8")
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Parse ``path`` (or the packaged default when None); ``CatalogError`` on any problem."""
    if path is None:
        return parse_catalog(default_catalog_text(), source=f"packaged {DEFAULT_CATALOG_NAME}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory, expected a catalog YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc}") from None
    return parse_catalog(text, source=str(path))
