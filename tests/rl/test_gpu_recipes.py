"""The documented multi-GPU RL recipes (docs/rl/) parse into the TRL config they promise."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from searchprime.config import load_config
from searchprime.rl.config import RLRunConfig
from searchprime.rl.grpo import grpo_config

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _processes(accelerate_yaml: Path) -> int:
    return int(yaml.safe_load(accelerate_yaml.read_text())["num_processes"])


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_vllm_server_recipe_trains_on_7_gpus_and_samples_on_the_8th() -> None:
    cfg = load_config(RLRunConfig, DOCS / "rl" / "grpo_vllm_server.yaml")
    args = grpo_config(cfg)
    assert args.use_vllm and args.vllm_mode == "server"
    assert (args.vllm_server_host, args.vllm_server_port) == ("127.0.0.1", 8010)
    from searchprime.rl.grpo import _vllm_sampler

    assert _vllm_sampler(cfg, args, None).base_url == "http://127.0.0.1:8010"  # the agent's client
    # sampler and trainer at one temperature, no truncation of the distribution
    assert (args.temperature, args.top_p, args.top_k) == (1.0, 1.0, 0)
    procs = _processes(DOCS / "rl" / "accelerate_zero3_7gpu.yaml")
    assert procs == 7
    episodes = args.per_device_train_batch_size * procs * args.gradient_accumulation_steps
    assert episodes % args.num_generations == 0  # whole groups per step
    assert episodes // args.num_generations == 28
    assert (args.learning_rate, args.beta, args.epsilon) == (1e-6, 0.001, 0.2)
    zero = yaml.safe_load((DOCS / "rl" / "accelerate_zero3_7gpu.yaml").read_text())
    assert zero["deepspeed_config"]["zero_stage"] == 3
