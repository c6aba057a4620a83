"""``searchprime model init tiny|smollm2 OUT``; ``model export-gguf HF_DIR OUT.gguf``."""

from __future__ import annotations

from pathlib import Path

import typer

from searchprime.cli._common import console, summary

model_app = typer.Typer(
    help="Policy models: make trainable Hugging Face folders; export them to GGUF.",
    no_args_is_help=True,
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


@model_app.command("export-gguf")
def export_gguf_cmd(
    hf_dir: Path = typer.Argument(
        ..., help="Hugging Face Llama folder (e.g. a fine-tuned SmolLM2)."
    ),
    out: Path = typer.Argument(..., help="Output .gguf file."),
    template: Path | None = typer.Option(
        None, help="GGUF of the same base model to copy metadata/tokenizer from (default: SmolLM2)."
    ),
    dtype: str = typer.Option(
        "f16", help="Matrices: f16 (matches transformers) | f32 | q8_0 (faster, drifts)."
    ),
) -> None:
    """Write HF_DIR as a GGUF file for llama.cpp (``searchprime serve-model``, GGUFServer)."""
    from searchprime.errors import ConfigError
    from searchprime.train.gguf_export import export_gguf

    if dtype not in ("f16", "f32", "q8_0"):
        raise ConfigError(f"--dtype: must be f16, f32 or q8_0, got {dtype!r}")
    with console.status(f"exporting {hf_dir} to {out}"):
        path = export_gguf(hf_dir, out, template_gguf=template, dtype=dtype)  # type: ignore[arg-type]
    summary(f"GGUF ({dtype}, {path.stat().st_size / 1e6:.1f} MB) -> {path}")


def register(app: typer.Typer) -> None:
    """Add ``model`` to ``app``."""
    app.add_typer(model_app, name="model")
