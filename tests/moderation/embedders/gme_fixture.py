"""A tiny random GME (Qwen2-VL) checkpoint built in code, laid out like the real download.

The real ``Alibaba-NLP/gme-Qwen2-VL-2B-Instruct`` directory holds a transformers-4.x style
``config.json`` (text settings at the top level, ``vision_config`` nested), safetensors with the
legacy key names (``model.layers.*``, ``visual.*``), a byte-level BPE ``tokenizer.json`` with the
Qwen special tokens and a ``preprocessor_config.json`` using ``min_pixels``/``max_pixels``. This
module writes the same layout with tiny dimensions and random weights, so tests load it through
exactly the production code path (``GmeEmbedder(path)``) without any download.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["QWEN_SPECIAL_TOKENS", "build_tiny_gme", "build_tokenizer", "tiny_qwen2vl_config"]

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2's pre-tokenizer split (the GPT-4 style regex), so merges behave like the real tokenizer.
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_CORPUS = [
    "a photo of a weapon",
    "a detailed image showing graphic violence",
    "blood and gore in the image",
    "extremist propaganda poster with hate symbols",
    "drugs and drug paraphernalia on a table",
    "self-harm scars on an arm",
    "You are a helpful assistant.",
    "Find an image that matches the given text.",
    "system user assistant",
]

# Qwen2-VL's chat template (abridged to images and text); GME builds its prompt by hand, but a
# real tokenizer directory carries one, so the fixture does too.
_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(vocab_size: int = 320):  # -> PreTrainedTokenizerFast
    """A byte-level BPE with Qwen's pre-tokenizer and special tokens (ids after the merges)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    # Special tokens go last, as in Qwen's vocabulary (ids 151643+ in the real one).
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL_TOKENS,
        model_max_length=32768,
        chat_template=_CHAT_TEMPLATE,
    )
    return fast


def tiny_qwen2vl_config(
    token_ids: dict[str, int], vocab_size: int, **overrides
):  # -> Qwen2VLConfig
    """A Qwen2-VL config small enough for CPU tests; ``overrides`` reach the text config."""
    from transformers import Qwen2VLConfig

    text = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},  # sums to head_dim/2
        "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "bos_token_id": token_ids["<|endoftext|>"],
        "eos_token_id": token_ids["<|im_end|>"],
    } | overrides
    vision = {
        "depth": 2,
        "embed_dim": 32,
        "hidden_size": text["hidden_size"],  # the merger projects into the text width
        "num_heads": 2,
        "mlp_ratio": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
    )


def _legacy_config_dict(config) -> dict:  # config: Qwen2VLConfig
    """The transformers-4.x ``config.json`` shape the real GME download has."""
    text = config.text_config.to_dict()
    vision = config.vision_config.to_dict()
    flat = {
        key: text[key]
        for key in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
            "rms_norm_eps",
            "bos_token_id",
            "eos_token_id",
            "hidden_act",
        )
    }
    rope = text["rope_parameters"]
    flat |= {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "rope_theta": rope["rope_theta"],
        "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]},
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "image_token_id": config.image_token_id,
        "video_token_id": config.video_token_id,
        "vision_start_token_id": config.vision_start_token_id,
        "vision_end_token_id": config.vision_end_token_id,
        "vision_config": {
            key: vision[key]
            for key in (
                "depth",
                "embed_dim",
                "hidden_size",
                "hidden_act",
                "mlp_ratio",
                "num_heads",
                "in_channels",
                "patch_size",
                "spatial_merge_size",
                "temporal_patch_size",
            )
        },
    }
    return flat


def _legacy_key(name: str) -> str:
    """5.x parameter names back to the 4.x ones (``model.x``, ``visual.x``) of the download."""
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model.") :]
    if name.startswith("model.visual."):
        return name[len("model.") :]
    return name


def build_tiny_gme(directory: Path, *, seed: int = 0, vocab_size: int = 320) -> dict:
    """Write a tiny random GME checkpoint into ``directory``; returns its state dict (5.x keys)."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2VLForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    config = tiny_qwen2vl_config(token_ids, vocab_size=len(tokenizer))

    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    # Random init leaves the embeddings tiny next to the vision features; widen everything a
    # little so differences between positional schemes are far above float noise.
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 0.08)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}

    legacy = {_legacy_key(k): v for k, v in state.items()}
    save_file(legacy, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(_legacy_config_dict(config), indent=2))
    tokenizer.save_pretrained(str(directory))
    (directory / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2VLProcessor",
                "min_pixels": 3136,
                "max_pixels": 12845056,
                "patch_size": 14,
                "temporal_patch_size": 2,
                "merge_size": 2,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
            },
            indent=2,
        )
    )
    return state
