"""GmeEmbedder on a tiny random Qwen2-VL: the official recipe, batching, padding, bounds."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from moderation.embedders.base import (  # noqa: E402
    DEFAULT_IMAGE_INSTRUCTION,
    QUERY_INSTRUCTION,
    Embedder,
)
from moderation.embedders.gme import (  # noqa: E402
    GmeEmbedder,
    GmeLoadError,
    pad_extreme_aspect,
    weights_fingerprint,
)

ATOL = 1e-5
SIZES = [(448, 448), (700, 300), (100, 200), (640, 480), (45, 61)]  # (width, height)
TEXTS = [
    "a photo of a weapon",
    "x",
    "a detailed image showing graphic violence, blood and gore in a dark alley at night",
    "drugs in the image",
]


def _image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Smooth gradients plus noise: resampling matters, unlike flat colour.
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(1, width), y * 255 // max(1, height), (x + y) % 256], -1)
    noise = rng.integers(0, 40, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [_image(w, h, seed) for seed, (w, h) in enumerate(SIZES)]


# --- an independent transcription of gme_inference.py (model card), for comparison ----------
def _qwen_vl_utils_smart_resize(height: int, width: int) -> tuple[int, int]:
    factor, min_pixels, max_pixels = 28, 4 * 28 * 28, 16384 * 28 * 28
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _fetch_image(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    width, height = image.size
    resized_height, resized_width = _qwen_vl_utils_smart_resize(height, width)
    return image.resize((resized_width, resized_height))


def _official_inputs(embedder, texts=None, images=None, instruction=None):
    """``GmeQwen2VL.embed``: prompts, processor call (right padding), as the model card does."""
    is_query = images is None
    if not is_query or instruction is None:
        instruction = DEFAULT_IMAGE_INSTRUCTION
    items = images if images is not None else texts
    messages, fetched = [], []
    for item in items:
        content = ""
        if images is not None:
            content += "<|vision_start|><|image_pad|><|vision_end|>"
            fetched.append(_fetch_image(item))
        else:
            content += item
        messages.append(
            f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n"
            "<|im_start|>assistant\n<|endoftext|>"
        )
    vision = {}
    if fetched:
        vision = dict(embedder.image_processor(images=fetched, return_tensors="pt"))
        # Qwen2VLProcessor expands each <|image_pad|> to t·h·w / merge² copies.
        counts = (vision["image_grid_thw"].prod(-1) // 4).tolist()
        messages = [
            m.replace("<|image_pad|>", "<|image_pad|>" * n)
            for m, n in zip(messages, counts, strict=True)
        ]
    tokenizer = embedder.tokenizer
    tokenizer.padding_side = "right"
    batch = tokenizer(messages, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"], vision


def _official_pool(hidden, mask):
    left_padding = mask[:, -1].sum() == mask.shape[0]
    if left_padding:
        pooled = hidden[:, -1]
    else:
        pooled = hidden[torch.arange(hidden.shape[0]), mask.sum(dim=1) - 1]
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


@torch.inference_mode()
def official_reference(embedder, texts=None, images=None, instruction=None) -> np.ndarray:
    """``GmeQwen2VL.forward``: embed, scatter vision features, decoder with position_ids=None."""
    ids, mask, vision = _official_inputs(embedder, texts, images, instruction)
    model = embedder._model
    embeds = model.model.get_input_embeddings()(ids)
    if vision:
        image_embeds = model.model.visual(
            vision["pixel_values"], grid_thw=vision["image_grid_thw"]
        ).pooler_output
        embeds[ids == model.config.image_token_id] = image_embeds
    hidden = model.model.language_model(
        input_ids=None, position_ids=None, attention_mask=mask, inputs_embeds=embeds
    ).last_hidden_state
    return _official_pool(hidden, mask)


@torch.inference_mode()
def stock_mrope_forward(embedder, texts=None, images=None, instruction=None) -> np.ndarray:
    """What plain transformers 5.x does with the same inputs: 3-D M-RoPE positions."""
    ids, mask, vision = _official_inputs(embedder, texts, images, instruction)
    model = embedder._model
    extra = {}
    if vision:
        extra = {
            "pixel_values": vision["pixel_values"],
            "image_grid_thw": vision["image_grid_thw"],
            "mm_token_type_ids": (ids == model.config.image_token_id).int(),
        }
    hidden = model.model(input_ids=ids, attention_mask=mask, **extra).last_hidden_state
    return _official_pool(hidden, mask)


# --- loading ---------------------------------------------------------------------------------
def test_loads_every_weight_of_the_legacy_layout(tiny_gme, tiny_gme_checkpoint):
    _, state = tiny_gme_checkpoint
    loaded = tiny_gme._model.state_dict()
    assert set(state) <= set(loaded)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name


def test_info_and_protocol(tiny_gme):
    assert isinstance(tiny_gme, Embedder)
    info = tiny_gme.info
    assert (info.name, info.dim, info.dtype, info.device) == ("gme", 64, "float32", "cpu")
    assert info.model_id.startswith("gme:")


def test_fingerprint_follows_the_weights(tiny_gme_dir, tmp_path):
    copy_dir = tmp_path / "copy"
    shutil.copytree(tiny_gme_dir, copy_dir)
    assert weights_fingerprint(copy_dir) == weights_fingerprint(tiny_gme_dir)
    weights = copy_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of the last tensor
    weights.write_bytes(bytes(data))
    assert weights_fingerprint(copy_dir) != weights_fingerprint(tiny_gme_dir)


def test_refuses_anything_but_a_local_weights_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MODERATION_GME_PATH", raising=False)
    with pytest.raises(GmeLoadError, match="MODERATION_GME_PATH"):
        GmeEmbedder(None, device="cpu")
    with pytest.raises(GmeLoadError, match="no config.json"):
        GmeEmbedder("Alibaba-NLP/gme-Qwen2-VL-2B-Instruct", device="cpu")  # a hub id: no download
    with pytest.raises(GmeLoadError, match="no config.json"):
        GmeEmbedder(tmp_path, device="cpu")


def test_load_errors_are_backend_errors_the_cli_reports(tmp_path):
    from moderation.embedders.registry import BackendUnavailable, load_embedder

    with pytest.raises(BackendUnavailable, match="no config.json"):
        load_embedder("gme", tmp_path, device="cpu")


def test_refuses_a_checkpoint_with_missing_weights(tiny_gme_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_gme_dir, broken)
    tensors = load_file(str(broken / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(GmeLoadError, match="weights missing"):
        GmeEmbedder(broken, device="cpu")


def test_reads_the_directory_from_settings(tiny_gme_dir, monkeypatch):
    monkeypatch.setenv("MODERATION_GME_PATH", str(tiny_gme_dir))
    embedder = GmeEmbedder(device="cpu", min_image_tokens=4, max_image_tokens=16)
    assert embedder.path == tiny_gme_dir
    vectors = embedder.embed_images([_image(64, 64, 0)])
    assert vectors.shape == (1, 64)


# --- the recipe ------------------------------------------------------------------------------
def test_images_match_the_official_reference(tiny_gme, images):
    ours = tiny_gme.embed_images(images)
    reference = official_reference(tiny_gme, images=images)
    np.testing.assert_allclose(ours, reference, atol=ATOL)


def test_texts_match_the_official_reference(tiny_gme):
    ours = tiny_gme.embed_texts(TEXTS, instruction=QUERY_INSTRUCTION)
    reference = official_reference(tiny_gme, texts=TEXTS, instruction=QUERY_INSTRUCTION)
    np.testing.assert_allclose(ours, reference, atol=ATOL)


def test_stock_mrope_forward_differs_for_images_not_texts(tiny_gme_small, images):
    """The official 1-D positions are not what transformers 5.x does by default."""
    ours = tiny_gme_small.embed_images(images)
    stock = stock_mrope_forward(tiny_gme_small, images=images)
    assert np.abs(ours - stock).max() > 1e-2
    # Text-only rows get identical positions either way, so the difference is M-RoPE's.
    texts = tiny_gme_small.embed_texts(TEXTS)
    np.testing.assert_allclose(
        texts,
        stock_mrope_forward(tiny_gme_small, texts=TEXTS, instruction=QUERY_INSTRUCTION),
        atol=ATOL,
    )


def test_own_vision_pass_equals_transformers_vision_tower(tiny_gme_small, images):
    batch = tiny_gme_small.prepare_images(images)
    with torch.inference_mode():
        ours = tiny_gme_small._vision_features(batch.pixel_values, batch.image_grid_thw)
        stock = tiny_gme_small._model.model.visual(
            batch.pixel_values, grid_thw=batch.image_grid_thw
        ).pooler_output
    torch.testing.assert_close(ours, stock, atol=ATOL, rtol=0)


def test_instruction_reaches_queries_only(tiny_gme_small, images):
    decode = tiny_gme_small.tokenizer.decode
    query = decode(tiny_gme_small.prepare_texts(["a knife"]).input_ids[0])
    assert f"<|im_start|>system\n{QUERY_INSTRUCTION}<|im_end|>" in query
    assert query.endswith(
        "<|im_start|>user\na knife<|im_end|>\n<|im_start|>assistant\n<|endoftext|>"
    )
    image = decode(tiny_gme_small.prepare_images(images[:1]).input_ids[0])
    assert f"<|im_start|>system\n{DEFAULT_IMAGE_INSTRUCTION}<|im_end|>" in image
    assert QUERY_INSTRUCTION not in image
    assert "<|vision_start|><|image_pad|>" in image and image.endswith("<|endoftext|>")
    as_query = tiny_gme_small.embed_texts(["a knife"])
    as_corpus = tiny_gme_small.embed_texts(["a knife"], instruction=DEFAULT_IMAGE_INSTRUCTION)
    assert np.abs(as_query - as_corpus).max() > 1e-3


# --- batching and padding --------------------------------------------------------------------
@pytest.mark.parametrize("side", ["right", "left"])
def test_image_batch_equals_one_at_a_time(side, tiny_gme_small, tiny_gme_small_left, images):
    embedder = tiny_gme_small if side == "right" else tiny_gme_small_left
    assert len(set(embedder.prepare_images(images).image_token_counts)) > 2  # mixed sizes
    batch = embedder.embed_images(images)
    singles = np.concatenate([embedder.embed_images([im]) for im in images])
    np.testing.assert_allclose(batch, singles, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-6)
    assert batch.dtype == np.float32 and batch.shape == (len(images), 64)


@pytest.mark.parametrize("side", ["right", "left"])
def test_text_batch_equals_one_at_a_time(side, tiny_gme_small, tiny_gme_small_left):
    embedder = tiny_gme_small if side == "right" else tiny_gme_small_left
    batch = embedder.embed_texts(TEXTS)
    mask = embedder.prepare_texts(TEXTS).attention_mask
    assert not bool(mask.all()), "texts of mixed length must actually be padded"
    singles = np.concatenate([embedder.embed_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, singles, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-6)


def test_left_and_right_padding_give_the_same_vectors(tiny_gme_small, tiny_gme_small_left, images):
    right = tiny_gme_small.prepare_images(images)
    left = tiny_gme_small_left.prepare_images(images)
    assert right.attention_mask[:, 0].all() and not right.attention_mask[:, -1].all()
    assert left.attention_mask[:, -1].all() and not left.attention_mask[:, 0].all()
    np.testing.assert_allclose(
        tiny_gme_small.embed_inputs(right), tiny_gme_small.embed_inputs(left), atol=ATOL
    )


def test_batches_smaller_than_the_input_keep_input_order(tiny_gme_small, images):
    small = GmeEmbedder.__new__(GmeEmbedder)
    small.__dict__.update(tiny_gme_small.__dict__, batch_size=2)
    np.testing.assert_allclose(
        small.embed_images(images), tiny_gme_small.embed_images(images), atol=ATOL
    )
    assert small.embed_images([]).shape == (0, 64)
    assert small.embed_texts([]).shape == (0, 64)


# --- bounds ------------------------------------------------------------------------------------
def test_image_tokens_stay_within_min_and_max(tiny_gme):
    small, large = _image(45, 61, 1), _image(2200, 1900, 2)
    counts = tiny_gme.prepare_images([small, large]).image_token_counts
    assert counts[0] == 256  # upscaled to the 256-token minimum (448² px)
    assert 1200 <= counts[1] <= 1280
    assert counts == [tiny_gme._image_tokens(small), tiny_gme._image_tokens(large)]


@pytest.mark.parametrize("size", [(8000, 8), (8, 8000), (3000, 2)])
def test_extreme_aspect_ratios_are_padded_not_refused(tiny_gme, tiny_gme_small, size):
    image = _image(*size, seed=3)
    padded = pad_extreme_aspect(image)
    assert max(padded.size) <= 100 * min(padded.size)
    assert max(padded.size) == max(size)  # the long side keeps every pixel
    (count,) = tiny_gme.prepare_images([image]).image_token_counts  # production bounds
    assert 256 <= count <= 1280 and count == tiny_gme._image_tokens(image)
    vector = tiny_gme_small.embed_images([image])
    assert np.isfinite(vector).all() and abs(np.linalg.norm(vector) - 1) < 1e-6


def test_over_long_texts_are_cut_inside_their_content(tiny_gme):
    text = "weapon blood gore " * 1200
    ids = tiny_gme.prepare_texts([text]).input_ids[0].tolist()
    assert len(ids) == tiny_gme.max_length
    tail = tiny_gme.tokenizer("<|im_end|>\n<|im_start|>assistant\n<|endoftext|>")["input_ids"]
    assert ids[-len(tail) :] == tail  # the pooled token is still <|endoftext|>
    vector = tiny_gme.embed_texts([text, "short"])
    np.testing.assert_allclose(vector[1:], tiny_gme.embed_texts(["short"]), atol=ATOL)


def test_texts_cannot_smuggle_image_tokens(tiny_gme):
    with pytest.raises(ValueError, match="image_pad"):
        tiny_gme.embed_texts(["look <|image_pad|> here"])


# --- the scorer layer on top ------------------------------------------------------------------
def test_build_scorer_scores_the_default_catalog_with_gme(tiny_gme_dir, tmp_path, images):
    from moderation.config import Settings
    from moderation.scoring.scorers import build_scorer

    settings = Settings(
        backend="gme", gme_path=tiny_gme_dir, device="cpu", pattern_cache_dir=tmp_path
    )
    scorer = build_scorer(settings)
    assert scorer.model_id.startswith("gme:") and list(tmp_path.iterdir())  # vectors cached
    (score_set,) = scorer.score_images(images[:1])
    assert set(score_set) == set(scorer.categories) and len(score_set) == 8
    phrasings = {p for _, p in scorer.catalog.pairs()}
    for category, score in score_set.items():
        assert -1.0 <= score.score <= 1.0 and score.phrasing in phrasings, category


def test_batch_size_reaches_gme_through_build_scorer(tiny_gme_dir, settings_factory, images):
    """MODERATION_BATCH_SIZE is the rows of every model forward, texts and images alike."""
    from moderation.scoring.catalog import catalog_from_mapping
    from moderation.scoring.scorers import build_scorer

    catalog = catalog_from_mapping(
        {"name": "five", "categories": {"weapons": {"severity": 2, "phrasings": list("abcde")}}}
    )
    settings = settings_factory(backend="gme", gme_path=tiny_gme_dir, device="cpu", batch_size=2)
    scorer = build_scorer(settings, catalog)
    sizes: list[int] = []

    def record(_module, _args, kwargs, _output):
        sizes.append(int(kwargs["inputs_embeds"].shape[0]))

    hook = scorer.embedder._model.model.language_model.register_forward_hook(
        record, with_kwargs=True
    )
    try:
        scorer.embedder.embed_texts([p for _, p in catalog.pairs()])
        scorer.score_images(images[:3])
    finally:
        hook.remove()
    assert scorer.embedder.batch_size == 2
    assert sizes == [2, 2, 1, 2, 1]  # five phrasings, then three images


def test_fast_preprocessor_feeds_the_model_what_the_reference_does(tiny_gme_dir, images):
    """MODERATION_GME_PREPROCESSOR: fast (what auto is on the CPU) and reference give the same
    inputs."""
    from moderation.embedders.qwen2vl_image import FastQwen2VLImageProcessor

    fast = GmeEmbedder(tiny_gme_dir, device="cpu", batch_size=8)
    reference = GmeEmbedder(tiny_gme_dir, device="cpu", batch_size=8, preprocessor="reference")
    try:
        assert isinstance(fast._fast_processor, FastQwen2VLImageProcessor)
        assert reference._fast_processor is None
        a, b = fast.prepare_images(images), reference.prepare_images(images)
        np.testing.assert_array_equal(a.image_grid_thw.numpy(), b.image_grid_thw.numpy())
        np.testing.assert_allclose(a.pixel_values.numpy(), b.pixel_values.numpy(), atol=1e-6)
        np.testing.assert_allclose(
            fast.embed_images(images), reference.embed_images(images), atol=1e-5
        )
        assert fast.info.model_id == reference.info.model_id  # same vectors, same cache keys
    finally:
        fast.close()
        reference.close()
    with pytest.raises(ValueError, match="preprocessor"):
        GmeEmbedder(tiny_gme_dir, device="cpu", preprocessor="bogus")  # type: ignore[arg-type]


def test_preprocessor_setting_reaches_gme(tiny_gme_dir, settings_factory):
    from moderation.scoring.scorers import _load_embedder

    settings = settings_factory(
        backend="gme", gme_path=tiny_gme_dir, device="cpu", gme_preprocessor="reference"
    )
    assert _load_embedder(settings).preprocessor == "reference"


# --- GPU (skipped without CUDA) ----------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_half_precision_agrees_with_cpu(tiny_gme_dir, tiny_gme, images):
    gpu = GmeEmbedder(tiny_gme_dir, device="cuda", batch_size=8)
    assert gpu.info.dtype == "bfloat16" and gpu.info.model_id != tiny_gme.info.model_id
    batch = gpu.embed_images(images)
    singles = np.concatenate([gpu.embed_images([im]) for im in images])
    cpu = tiny_gme.embed_images(images)
    # bf16 rounding: compare directions (cosines of unit rows), not coordinates.
    assert (batch * singles).sum(axis=1).min() > 0.995
    assert (batch * cpu).sum(axis=1).min() > 0.99
    assert (gpu.embed_texts(TEXTS) * tiny_gme.embed_texts(TEXTS)).sum(axis=1).min() > 0.99


def test_the_scorer_profile_of_gme_matches_the_built_scorer(tiny_gme_dir, settings_factory):
    """The adjuster reads scales without loading GME: they must be the built scorer's."""
    from moderation.scoring.scorers import build_scorer, scorer_profile

    settings = settings_factory(backend="gme", gme_path=tiny_gme_dir)
    built, profile = build_scorer(settings), scorer_profile(settings)
    assert dict(built.scales) == profile.scales and set(profile.scales.values()) == {"gme_cosine"}
    assert dict(built.severities) == profile.severities
    assert dict(built.base_thresholds) == profile.base_thresholds
