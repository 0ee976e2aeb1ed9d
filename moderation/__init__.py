"""Content-moderation queue worker: embed, score against a violation catalog, tier, review."""

__all__ = ["__version__"]

__version__ = "0.1.0"
