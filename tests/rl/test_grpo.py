"""GRPO through TRL with the agent loop: groups, masks, resume, and learning on a toy task."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from searchprime.rl.config import RLRunConfig
from searchprime.rl.grpo import build_trainer, read_steps, run_rl
from searchprime.rl.rewards import register_reward

REPO = Path(__file__).resolve().parents[2]


@register_reward("toy_group")
def _toy_group(traj) -> float:
    """t0: always 1 (a zero-variance group); other tasks: the attempt's parity."""
    return 1.0 if traj.task_id == "t0" else float(traj.attempt % 2)


def _cfg(toy, policy, out: Path, **kw) -> RLRunConfig:
    trl = {"max_steps": 2, "learning_rate": 1e-3, "save_steps": 100, "disable_tqdm": True}
    trl.update(kw.pop("trl", {}))
    return RLRunConfig(
        model=str(policy),
        tasks=str(toy.tasks),
        search={"kind": "bm25", "path": str(toy.index)},
        output_dir=str(out),
        episode={"max_turns": 2, "max_tokens": 24, "max_length": 512, "thinking": "none"},
        trl=trl,
        **kw,
    )


def test_groups_are_consecutive_and_equal_groups_get_zero_advantage(toy, toy_policy, tmp_path):
    built = build_trainer(
        _cfg(toy, toy_policy, tmp_path / "rl", rewards={"toy_group": 1.0}, curriculum=None)
    )
    try:
        trainer = built.trainer
        G = trainer.num_generations
        inputs = [{"prompt": tid} for tid in ("t0", "t3") for _ in range(G)]
        out = trainer._generate_and_score_completions(inputs)
        trajs = json.loads(
            "["
            + ",".join(
                (tmp_path / "rl" / "episodes" / "step-000001.jsonl").read_text().splitlines()
            )
            + "]"
        )
        assert [t["task_id"] for t in trajs] == ["t0"] * G + ["t3"] * G
        assert [t["attempt"] for t in trajs] == list(range(G)) * 2
        adv = out["advantages"]
        assert torch.all(adv[:G] == 0), "an all-equal group has zero advantage"
        assert torch.all(adv[G:] != 0)
        assert torch.all((adv[G:] > 0) == torch.tensor([a % 2 == 1 for a in range(G)]))

        # zero gradient at every environment position, non-zero on sampled ones: the last
        # hidden state at position i feeds only the prediction of token i + 1 (TRL fuses the
        # LM head, so there are no logits to hook)
        model = trainer.model
        grads: list[torch.Tensor] = []

        def keep(_module, _args, output):
            output.register_hook(lambda g: grads.append(g.detach().clone()))

        handle = model.model.norm.register_forward_hook(keep)
        try:
            model.zero_grad()
            loss = trainer.compute_loss(model, out)
            loss.backward()
        finally:
            handle.remove()
        P, C = out["prompt_ids"].shape[1], out["completion_ids"].shape[1]
        g = grads[-1][:, P - 1 : P + C - 1, :].abs().sum(-1)  # predicts completion token k
        policy = out["completion_mask"] * out["tool_mask"]
        assert torch.all(g[policy == 0] == 0)
        assert (policy == 0).sum() > 20, "episodes hold environment tokens"
        assert torch.all(g[G:][policy[G:] == 1] > 0)
    finally:
        built.close()


def test_bad_config_is_reported_with_its_field(toy, toy_policy, tmp_path):
    from searchprime.config import load_config
    from searchprime.errors import ConfigError

    path = tmp_path / "rl.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": "m",
                "tasks": "t",
                "output_dir": "o",
                "search": {"kind": "bm25", "path": "i"},
                "rewards": {"nope": 1.0},
            }
        )
    )
    with pytest.raises(ConfigError, match=r"rl.yaml: rewards: .*unknown reward 'nope'"):
        load_config(RLRunConfig, path)
    path.write_text(
        yaml.safe_dump(
            {
                "model": "m",
                "tasks": "t",
                "output_dir": "o",
                "search": {"kind": "bm25", "path": "i"},
                "trl": {"top_p": 0.9},
            }
        )
    )
    with pytest.raises(ConfigError, match="trl: .*top_p: set by searchprime"):
        load_config(RLRunConfig, path)
    with pytest.raises(ConfigError, match="curriculum: task 't0' .* no meta field 'hops'"):
        run_rl(_cfg(toy, toy_policy, tmp_path / "x", curriculum="hops"))


def test_resume_after_kill_restores_step_and_optimizer(toy, toy_policy, tmp_path):
    out = tmp_path / "rl"
    cfg = _cfg(
        toy,
        toy_policy,
        out,
        rewards={"em": 1.0, "format": 0.5},
        trl={"max_steps": 6, "save_steps": 1, "learning_rate": 1e-4},
    )
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))
    cmd = [sys.executable, "-m", "searchprime", "train", "rl", "--config", str(path)]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "TRL_EXPERIMENTAL_SILENCE": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint-2" / "optimizer.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    time.sleep(0.3)  # let it write on (a torn later checkpoint is what a crash leaves)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "searchprime_rl.json").exists(), "killed before the end"
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "searchprime_rl.json").read_text())
    assert summary["steps"] == 6 and summary["resumed_from"]
    resumed_at = int(summary["resumed_from"].rsplit("-", 1)[-1])
    assert resumed_at >= 2
    steps = [r["step"] for r in read_steps(out)]
    assert steps == [1, 2, 3, 4, 5, 6], "every step logged exactly once"
    state = torch.load(out / "checkpoint-6" / "optimizer.pt", weights_only=False)["state"]
    assert {int(s["step"]) for s in state.values()} == {6}, "Adam state carried across the kill"
    trainer_state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert trainer_state["global_step"] == 6
    assert len(list((out / "episodes").glob("step-*.jsonl"))) == 6
    # killed after the last checkpoint but before the summary: resuming trains no extra step
    (out / "searchprime_rl.json").unlink()
    again = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "searchprime_rl.json").read_text())["steps"] == 6
    assert [r["step"] for r in read_steps(out)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_rl_learns_to_search_first(toy, toy_policy, tmp_path):
    """From a 50/50 SFT mix, reward for searching first rises to >= 0.9 within 20 steps."""
    cfg = _cfg(
        toy,
        toy_policy,
        tmp_path / "rl",
        rewards={"toy_searched": 1.0},
        trl={"max_steps": 20, "num_generations": 8, "per_device_train_batch_size": 16},
    )
    t0 = time.perf_counter()
    summary = run_rl(cfg)
    rewards = [r["reward_mean"] for r in read_steps(cfg.output_dir)]
    assert len(rewards) == 20
    assert sum(rewards[:3]) / 3 <= 0.6, rewards
    assert sum(rewards[-3:]) / 3 >= 0.9, rewards
    assert summary.reward_last >= 0.9
    assert (Path(cfg.output_dir) / "curves.png").stat().st_size > 10_000
    assert time.perf_counter() - t0 < 600


def test_importance_correction_weighs_the_loss_without_an_extra_forward(toy, toy_policy, tmp_path):
    """A sampler whose logprobs sit 0.4 below the trainer's: each policy token's loss term is
    multiplied by exp(0.4), computed from the loss pass itself (no extra forward pass)."""
    from searchprime.rl.sampler import Sampled

    built = build_trainer(
        _cfg(toy, toy_policy, tmp_path / "rl", rewards={"toy_group": 1.0}, curriculum=None)
    )
    try:
        trainer = built.trainer
        sampler = built.runner.sampler
        draw = sampler.sample

        async def shifted(prompt_ids, params):
            s = await draw(prompt_ids, params)
            return Sampled(ids=s.ids, logprobs=[x - 0.4 for x in s.logprobs])

        sampler.sample = shifted
        forwards = 0
        forward = trainer._get_per_token_logps_and_entropies

        def counted(*args, **kwargs):
            nonlocal forwards
            forwards += 1
            return forward(*args, **kwargs)

        trainer._get_per_token_logps_and_entropies = counted
        trainer.is_correction = True
        inputs = [{"prompt": "t3"} for _ in range(trainer.num_generations)]
        out = trainer._generate_and_score_completions(inputs)
        assert forwards == 0 and "importance_sampling_ratio" not in out
        weighted = trainer.compute_loss(trainer.model, dict(out))
        assert forwards == 1
        mode = "train" if trainer.model.training else "eval"
        diff = trainer._metrics[mode]["sampling/sampling_logp_difference/mean"][-1]
        assert diff == pytest.approx(0.4, abs=1e-3)
        trainer.is_correction = False
        plain = trainer.compute_loss(trainer.model, dict(out))
        assert float(plain) != 0
        assert float(weighted) == pytest.approx(float(plain) * math.exp(0.4), rel=2e-3)
    finally:
        built.close()


def test_micro_batches_accumulate_into_one_step_per_generation(toy, toy_policy, tmp_path):
    """8 episodes per step in micro-batches of 2: one rollout call and one logged step each."""
    cfg = _cfg(
        toy,
        toy_policy,
        tmp_path / "rl",
        rewards={"toy_group": 1.0},
        trl={
            "max_steps": 2,
            "num_generations": 2,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 4,
        },
    )
    summary = run_rl(cfg)
    steps = read_steps(cfg.output_dir)
    assert summary.steps == 2 and [r["episodes"] for r in steps] == [8, 8]
    episodes = sorted((Path(cfg.output_dir) / "episodes").glob("step-*.jsonl"))
    assert [len(p.read_text().splitlines()) for p in episodes] == [8, 8]
