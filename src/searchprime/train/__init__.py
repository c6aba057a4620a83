"""Supervised fine-tuning (TRL) of a policy on ``prime`` data, and the models it starts from:
``run_sft(SFTRunConfig)`` trains (resumable), ``init_tiny`` / ``prepare_smollm2`` make a
trainable folder, ``export_gguf`` turns a checkpoint into a GGUF for llama.cpp. Nothing here
imports torch until a run starts."""

from searchprime.train.gguf_export import export_gguf
from searchprime.train.models import init_tiny, prepare_smollm2
from searchprime.train.resume import ResumePlan, plan_run
from searchprime.train.sft import LoraSettings, SFTRunConfig, SFTSummary, run_sft, train_sft

__all__ = [
    "LoraSettings",
    "ResumePlan",
    "SFTRunConfig",
    "SFTSummary",
    "export_gguf",
    "init_tiny",
    "plan_run",
    "prepare_smollm2",
    "run_sft",
    "train_sft",
]
