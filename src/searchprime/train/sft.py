"""Supervised fine-tuning on primed samples with TRL's ``SFTTrainer``.

What is trained: only the policy's own tokens. The data (``searchprime prime --format trl``)
is TRL's conversational prompt-completion layout; we always set ``completion_only_loss``
(no prompt token carries a label) and, when completions hold observations between outputs
(``--shape trajectory``), also ``assistant_only_loss`` (no observation token carries a
label; needs a chat template with ``{% generation %}`` markers: our model folders have one,
ChatML templates are patched to one that renders identically, others go through TRL's
``get_training_chat_template``). ``{"messages": [...]}`` rows from elsewhere are trained
with assistant-only loss.

Packing: only best-fit-decreasing (``bfd``/``bfd_split``), which is padding-free — each
packed row keeps its sequences apart through ``position_ids``, from which transformers builds
a block-diagonal mask (sdpa, eager, flex) or flash-attention's varlen lengths, so no token
attends across samples and labels are untouched. It pays off with flash-attention (varlen
kernels); with sdpa/eager the whole flattened batch is one quadratic attention, slower than
padding (so it is off by default). ``wrapped`` packing cuts samples mid-way and lets them
attend to each other: refused.

Configuration: :class:`~searchprime.train.sft_config.SFTRunConfig` holds our few fields
(model, data, output, LoRA, resume), the shared knobs of
:class:`~searchprime.train.sft_config.SFTHyper` (epochs, learning rate, batch size, max length,
``report_to``) and ``trl`` — any :class:`trl.SFTConfig` / ``TrainingArguments`` field — passed
through unchanged, so nothing of TRL's is re-declared. Loaded from YAML by :func:`load_config`.

Resuming: at start the output folder gets ``searchprime_sft_settings.json``, a fingerprint of
everything that changes the result (data and model file digests, ``limit``, LoRA, every
effective ``SFTConfig`` field but logging/saving/reporting ones). Rerunning the same command
after a kill resumes from the last complete checkpoint; other settings are refused, naming the
field; ``overwrite`` starts over (see :func:`searchprime.train.resume.plan_run`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchprime._lazy import require
from searchprime.errors import ConfigError
from searchprime.records import atomic_write_text
from searchprime.train.cpu_bf16 import cpu_bf16_context, cpu_has_native_bf16
from searchprime.train.fingerprint import file_digest, model_digest
from searchprime.train.resume import ResumePlan, plan_run
from searchprime.train.sft_config import TRL_DEFAULTS, LoraSettings, SFTRunConfig
from searchprime.train.sft_data import (
    data_paths,
    load_sft_data,
    load_sft_rows,
    merge_turn_rows,
    resolve_data,
)
from searchprime.train.sft_summary import SUMMARY_FILE, SFTSummary, whole_run_loss
from searchprime.train.tracking import tracking

__all__ = [
    "SETTINGS_FILE",
    "SUMMARY_FILE",
    "LoraSettings",
    "SFTRunConfig",
    "SFTSummary",
    "build_trainer",
    "load_sft_rows",
    "plan_sft",
    "run_sft",
    "sft_settings",
    "train_sft",
    "whole_run_loss",
]

_log = logging.getLogger(__name__)

#: Written into the output folder at start: the fingerprint of the run's settings.
SETTINGS_FILE = "searchprime_sft_settings.json"


# --------------------------------------------------------------------------- trainer


#: Said when a run asks for bf16 on a CPU that has no native bf16.
FP32_KERNELS_NOTE = (
    "this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 products run on fp32 kernels "
    "(same dtypes in and out, about fp32's speed; torch's own emulation is ~25x slower), so "
    "this training's bits differ from a native-bf16 CPU's as two CPU kinds' kernels do"
)


def _sft_config(cfg: SFTRunConfig, assistant_only: bool) -> Any:
    trl = require("trl", "train")
    torch = require("torch", "train")
    kwargs = {**TRL_DEFAULTS, **cfg.trl, **cfg.knob_trl()}
    if not torch.cuda.is_available():
        if "bf16" not in cfg.trl:
            # TRL defaults to bf16. On a CPU with native bf16 (AVX512-BF16 / AMX) autocast
            # measured 1.23x the tokens/s of fp32 for SmolLM2 with the same losses; without it
            # bf16 runs on fp32 kernels (cpu_bf16) at fp32's speed: no gain, another model.
            kwargs["bf16"] = cpu_has_native_bf16()
        elif kwargs.get("bf16") and not cpu_has_native_bf16():
            _log.warning(FP32_KERNELS_NOTE)
        if kwargs.get("bf16"):
            kwargs.setdefault("use_cpu", True)  # else transformers refuses bf16 without a GPU
        kwargs.setdefault("dataloader_pin_memory", False)
    if kwargs.get("packing") and kwargs.get("packing_strategy", "bfd") == "wrapped":
        raise ConfigError(
            "trl.packing_strategy: 'wrapped' cuts samples and lets them attend to each other; "
            "use 'bfd' (default) or 'bfd_split'"
        )
    kwargs.update(
        output_dir=cfg.output_dir,
        completion_only_loss=True,
        assistant_only_loss=assistant_only,
    )
    try:
        return trl.SFTConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"trl: {exc} (see trl.SFTConfig for the fields)") from None
    except ValueError as exc:
        raise ConfigError(f"trl: {exc}") from None


@dataclass
class _Built:
    trainer: Any
    tokenizer: Any
    samples: int
    assistant_only: bool
    args: Any
    dropped_too_long: int = 0


def _drop_too_long(rows: list[dict], tok: Any, max_length: int | None) -> tuple[list[dict], int]:
    """Drop samples longer than ``max_length`` tokens instead of letting TRL cut them.

    TRL truncates the end of a sequence (``keep_start``), which is exactly the part that is
    trained: a cut completion teaches a response that never ends, a fully cut one is dropped
    silently. We drop whole samples and say how many.
    """
    if max_length is None:
        return rows, 0
    kept = []
    for row in rows:
        msgs = row.get("messages") or row["prompt"] + row["completion"]
        ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
        if len(ids) <= max_length:
            kept.append(row)
    return kept, len(rows) - len(kept)


def build_trainer(cfg: SFTRunConfig, callbacks: list | None = None) -> _Built:
    """Load model, tokenizer and data and build the ``SFTTrainer`` (not yet trained)."""
    transformers = require("transformers", "train")
    trl = require("trl", "train")
    datasets = require("datasets", "train")
    if cfg.model.endswith(".gguf"):
        raise ConfigError(
            "model: a GGUF file cannot be trained; `searchprime model init smollm2 DIR` "
            "converts the packaged SmolLM2 to a Hugging Face folder"
        )
    rows, assistant_only, segments = load_sft_data(cfg.data, cfg.limit)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(cfg.model)
        model = transformers.AutoModelForCausalLM.from_pretrained(cfg.model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model: cannot load {cfg.model!r}: {exc}") from None
    if "prompt" in rows[0] and tok.chat_template:
        # one-turn export rows -> whole segments with assistant-only loss: the same loss on
        # templates that keep every turn, at about a quarter of the tokens (also when another
        # data folder holds whole trajectories already)
        limit = _sft_config(cfg, assistant_only=False).max_length

        def fits(row: dict) -> bool:
            msgs = row["prompt"] + row["completion"]
            ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
            return limit is None or len(ids) <= limit

        rows, merged = merge_turn_rows(
            rows,
            lambda msgs: tok.apply_chat_template(msgs, tokenize=False),
            segments,
            fits,
        )
        assistant_only = assistant_only or merged > 0
    args = _sft_config(cfg, assistant_only)
    if assistant_only:
        from searchprime.train.models import ensure_generation_template

        ensure_generation_template(tok)
    peft_config = None
    if cfg.lora is not None:
        peft = require("peft", "train")
        peft_config = peft.LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
    rows, too_long = _drop_too_long(rows, tok, args.max_length)
    if not rows:
        raise ConfigError(
            f"data: all {too_long} samples are longer than trl.max_length={args.max_length} "
            "tokens; raise trl.max_length"
        )
    dataset = datasets.Dataset.from_list(rows)
    try:
        trainer = trl.SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot build the SFT trainer: {exc}") from None
    return _Built(trainer, tok, len(rows), assistant_only, args, too_long)


def _save(built: _Built, cfg: SFTRunConfig) -> None:
    out = Path(cfg.output_dir)
    model = built.trainer.model
    if cfg.lora is not None:
        model.save_pretrained(out / "adapter")
        if cfg.lora.merge:
            model = model.merge_and_unload()
            model.save_pretrained(out)
    else:
        built.trainer.save_model(str(out))
    built.tokenizer.save_pretrained(out)


#: SFTConfig fields that do not change the trained weights (logging, saving, reporting,
#: devices and speed-only switches): left out of the settings fingerprint.
_NOT_RESULT = (
    "output_dir", "overwrite_output_dir", "logging_", "log_", "save_", "report_to", "run_name",
    "project", "trackio_", "disable_tqdm", "push_to_hub", "hub_", "eval_", "per_device_eval_",
    "prediction_loss_only", "include_", "batch_eval_metrics", "dataloader_num_workers",
    "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context", "ddp_timeout", "debug", "skip_memory_metrics",
    "do_train", "do_eval", "do_predict", "resume_from_checkpoint", "local_rank", "use_cpu",
    "enable_jit_checkpoint", "restore_callback_states_from_checkpoint",
    "torch_empty_cache_steps", "activation_checkpointing", "gradient_checkpointing",
    "activation_offloading", "torch_compile", "bf16_full_eval", "fp16_full_eval",
    "dataset_num_proc",
)  # fmt: skip
#: Settings an explicit ``resume=True`` may change: the run's length.
_LENGTH_KEYS = ("trl.max_steps", "trl.num_train_epochs")


def _data_digest(data: str | list[str]) -> dict[str, Any] | list[dict[str, Any]]:
    """Digest of the training file (a list for several: one folder's runs keep theirs)."""
    digests = [file_digest(resolve_data(p), full_up_to=2**40) for p in data_paths(data)]
    return digests[0] if isinstance(data, str) else digests


def sft_settings(cfg: SFTRunConfig) -> dict[str, Any]:
    """The fingerprint of what changes a run's result (stored in :data:`SETTINGS_FILE`)."""
    args = _sft_config(cfg, assistant_only=False).to_dict()
    trl = {k: v for k, v in sorted(args.items()) if not k.startswith(_NOT_RESULT)}
    trl.pop("assistant_only_loss")  # decided by the data, which is fingerprinted
    return {
        "version": 1,
        "model": model_digest(cfg.model),
        "data": _data_digest(cfg.data),
        "limit": cfg.limit,
        "lora": cfg.lora.model_dump() if cfg.lora is not None else None,
        "trl": trl,
    }


def plan_sft(cfg: SFTRunConfig) -> ResumePlan:
    """Check ``output_dir`` against ``cfg`` (resume, refuse, or start over) and store the
    settings; see :func:`searchprime.train.resume.plan_run`."""
    return plan_run(
        cfg.output_dir,
        sft_settings(cfg),
        resume=cfg.resume,
        overwrite=cfg.overwrite,
        settings_file=SETTINGS_FILE,
        finished_file=SUMMARY_FILE,
        length_keys=_LENGTH_KEYS,
    )


def _log_at_saves() -> Any:
    """A callback that logs the loss at every checkpoint, so that the log history stored in
    a checkpoint covers every step up to it and a resumed run's whole-run loss is exact."""
    transformers = require("transformers", "train")

    class LogAtSaves(transformers.TrainerCallback):
        def _force(self, control: Any) -> Any:
            if control.should_save:
                control.should_log = True
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            return self._force(control)

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            return self._force(control)

    return LogAtSaves()


def train_sft(cfg: SFTRunConfig, callbacks: list | None = None) -> Path:
    """Train; return the output folder (final HF model + ``searchprime_sft.json``)."""
    return Path(run_sft(cfg, callbacks).output_dir)


def _state_at(checkpoint: str | None) -> dict[str, Any]:
    if checkpoint is None:
        return {}
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))


def run_sft(
    cfg: SFTRunConfig, callbacks: list | None = None, plan: ResumePlan | None = None
) -> SFTSummary:
    """Train (resuming per :func:`plan_sft`, or ``plan`` when given), save the final model
    (HF folder) into ``output_dir``, write and return the summary.

    A folder that already holds the finished run of these settings is not trained again:
    its stored summary is returned.
    """
    plan = plan or plan_sft(cfg)
    out = Path(cfg.output_dir)
    if plan.finished:
        return SFTSummary.model_validate_json((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    resume = plan.checkpoint
    before = _state_at(resume)
    with tracking(cfg.report_to, out):
        built = build_trainer(cfg, [*(callbacks or []), _log_at_saves()])
        start = time.perf_counter()
        with cpu_bf16_context(bool(built.args.bf16), built.args.device.type):
            result = built.trainer.train(resume_from_checkpoint=resume)
        runtime = time.perf_counter() - start
    _save(built, cfg)
    state = built.trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
    start_step = int(before.get("global_step", 0))
    steps_run = state.global_step - start_step
    run_tokens = tokens - int(before.get("num_input_tokens_seen", 0) or 0)
    run_loss = result.training_loss if steps_run > 0 else None
    summary = SFTSummary(
        output_dir=cfg.output_dir,
        base_model=cfg.model,
        data=" + ".join(str(resolve_data(p)) for p in data_paths(cfg.data)),
        samples=built.samples,
        dropped_too_long=built.dropped_too_long,
        assistant_only_loss=built.assistant_only,
        lora=cfg.lora is not None,
        packing=bool(built.args.packing),
        steps=state.global_step,
        epochs=float(state.epoch or 0.0),
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        train_loss=whole_run_loss(state.log_history, start_step, run_loss, steps_run),
        tokens_seen=tokens,
        runtime_s=runtime,
        tokens_per_s=run_tokens / runtime if runtime > 0 else 0.0,
        resumed_from=resume,
        start_step=start_step,
        steps_run=steps_run,
        run_tokens=run_tokens,
        run_train_loss=run_loss,
    )
    atomic_write_text(out / SUMMARY_FILE, summary.model_dump_json(indent=2) + "\n")
    card = {"kind": "sft", "base_model": cfg.model, "data": summary.data, "lora": summary.lora}
    atomic_write_text(out / "searchprime_model.json", json.dumps(card, indent=2) + "\n")
    return summary
