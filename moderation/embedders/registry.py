"""Backend lookup by name: ``"module:Class"`` strings, imported only when first asked for."""

from __future__ import annotations

import importlib
from typing import Any

from moderation.embedders.base import Embedder, ImageClassifier

__all__ = [
    "CLASSIFIERS",
    "EMBEDDERS",
    "BackendUnavailable",
    "backend_names",
    "classifier_names",
    "load_classifier",
    "load_embedder",
    "resolve",
]

# Strings, not classes: importing this module must not import torch, transformers or
# onnxruntime (the API process never loads a model).
EMBEDDERS: dict[str, str] = {
    "gme": "moderation.embedders.gme:GmeEmbedder",
    "fake": "moderation.embedders.fake:FakeEmbedder",
}
CLASSIFIERS: dict[str, str] = {
    "open_nsfw": "moderation.embedders.open_nsfw:OpenNsfwClassifier",
}


def backend_names() -> list[str]:
    """Every name ``MODERATION_BACKEND`` / ``--backend`` accepts: a classifier (scoring
    alone, e.g. the embedded default ``open_nsfw``) or an embedder over the catalog."""
    return sorted(set(CLASSIFIERS) | set(EMBEDDERS))


def classifier_names() -> list[str]:
    """Every name ``MODERATION_CLASSIFIERS`` accepts."""
    return sorted(CLASSIFIERS)


# What to install when a backend's module cannot be imported.
_EXTRAS = {"gme": "pip install 'moderation[gme]' (torch==2.13.0 first on CPU machines)"}


class BackendUnavailable(RuntimeError):
    """A named backend is unknown or its libraries are not installed."""


def resolve(name: str, table: dict[str, str]) -> type[Any]:
    """The class registered under ``name`` in ``table``, imported now."""
    try:
        target = table[name]
    except KeyError:
        raise BackendUnavailable(
            f"unknown backend {name!r}; available: {', '.join(sorted(table))}"
        ) from None
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _EXTRAS.get(name, "reinstall the project")
        raise BackendUnavailable(f"backend {name!r} cannot be imported ({exc}); {hint}") from exc
    return getattr(module, attribute)  # type: ignore[no-any-return]


def load_embedder(name: str, *args: Any, **kwargs: Any) -> Embedder:
    """Construct the embedder ``name`` (e.g. ``load_embedder("gme", path, device="cuda")``)."""
    return resolve(name, EMBEDDERS)(*args, **kwargs)  # type: ignore[no-any-return]


def load_classifier(name: str, **kwargs: Any) -> ImageClassifier:
    """Construct the classifier ``name`` (e.g. ``load_classifier("open_nsfw")``)."""
    return resolve(name, CLASSIFIERS)(**kwargs)  # type: ignore[no-any-return]
