"""Catalog files: the packaged default violation catalog and loading a catalog from disk."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from moderation.patterns import Catalog, CatalogError, parse_catalog

__all__ = ["DEFAULT_CATALOG_NAME", "default_catalog_text", "load_catalog"]

DEFAULT_CATALOG_NAME = "default.yaml"


def default_catalog_text() -> str:
    """The packaged default catalog's YAML."""
    return resources.files(__name__).joinpath(DEFAULT_CATALOG_NAME).read_text(encoding="utf-8")


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
