"""``searchprime model init tiny|smollm2 OUT``: make a trainable Hugging Face model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from searchprime.cli._common import console, summary

model_app = typer.Typer(
    help="Policy models: make trainable Hugging Face folders.", no_args_is_help=True
)


@model_app.command("init")
def init(
    kind: str = typer.Argument(..., help="smollm2 (the study's policy) | tiny (test fixture)."),
    out_dir: Path = typer.Argument(..., help="Output folder."),
    overwrite: bool = typer.Option(False, help="smollm2: rebuild even if OUT already has it."),
    seed: int = typer.Option(0, help="tiny: initialisation seed."),
    hidden_size: int = typer.Option(64, help="tiny: hidden size."),
    layers: int = typer.Option(2, help="tiny: number of layers."),
    vocab_size: int = typer.Option(1024, help="tiny: BPE vocabulary size."),
) -> None:
    """Write SmolLM2-135M-Instruct (from the packaged GGUF) or a tiny random Llama model."""
    import json

    from searchprime.errors import ConfigError
    from searchprime.train.models import MODEL_CARD, init_tiny, prepare_smollm2

    with console.status(f"building {kind} model in {out_dir}"):
        if kind == "smollm2":
            path = prepare_smollm2(out_dir, overwrite=overwrite)
        elif kind == "tiny":
            path = init_tiny(
                out_dir, seed=seed, hidden_size=hidden_size, layers=layers, vocab_size=vocab_size
            )
        else:
            raise ConfigError(f"kind: unknown model kind {kind!r}; use smollm2 or tiny")
    card = json.loads((path / MODEL_CARD).read_text())
    summary(f"{kind} model ({card.get('parameters', 0) / 1e6:.2f}M parameters) -> {path}")


def register(app: typer.Typer) -> None:
    """Add ``model`` to ``app``."""
    app.add_typer(model_app, name="model")
