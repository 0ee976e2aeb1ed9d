"""Backends are looked up by name and imported lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moderation.embedders.fake import FakeEmbedder
from moderation.embedders.registry import (
    CLASSIFIERS,
    EMBEDDERS,
    BackendUnavailable,
    load_embedder,
    resolve,
)


def test_importing_the_registry_loads_no_model_library():
    code = (
        "import sys, moderation.embedders.registry, moderation.scoring.scorers; "
        "print([m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_names_resolve_to_classes():
    assert set(EMBEDDERS) >= {"gme", "fake"} and "open_nsfw" in CLASSIFIERS
    assert resolve("fake", EMBEDDERS) is FakeEmbedder
    assert isinstance(load_embedder("fake"), FakeEmbedder)


def test_unknown_name_lists_the_choices():
    with pytest.raises(BackendUnavailable, match="available: fake, gme"):
        resolve("clip", EMBEDDERS)


def test_missing_module_says_what_to_install(monkeypatch):
    monkeypatch.setitem(EMBEDDERS, "gme", "moderation.embedders.no_such_module:X")
    with pytest.raises(BackendUnavailable, match=r"moderation\[gme\]"):
        resolve("gme", EMBEDDERS)
