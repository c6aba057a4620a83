"""The verl bundle against verl's own classes: ``RLHFDataset``, the reward manager, the agent
loop over a scripted server manager and a real BM25 retrieval server on 127.0.0.1, and verl's
Hydra config accepting ``run_grpo.sh``'s settings.

verl 0.9.1 pins transformers < 5.11, so these run in their own environment
(``make verl-env``; ``.venv-verl/bin/python -m pytest tests/rl/test_verl_engine.py``). Without
verl the tests that need it skip; the episode tests (our loop through a server manager) run
everywhere.
"""

from __future__ import annotations

import asyncio
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from searchprime.eval.metrics import exact_match
from searchprime.rl.config import EpisodeSettings
from searchprime.rl.verl import VerlExportConfig, export_bundle
from searchprime.rl.verl.episode import run_verl_episode, task_from_row
from searchprime.rl.verl.reward import ANSWER_KEY
from searchprime.rl.verl.sampler import cut_at_stop
from searchprime.search.bm25 import BM25Search
from searchprime.search.http_client import RetrieverClient
from searchprime.search.server import BackgroundServer, create_app
from searchprime.tasks import load_tasks

try:
    import verl  # noqa: F401

    HAVE_VERL = True
except ImportError:
    HAVE_VERL = False
needs_verl = pytest.mark.skipif(
    not HAVE_VERL, reason="verl is not installed here: run under .venv-verl (make verl-env)"
)


@dataclass
class _Output:
    """verl's ``TokenOutput`` fields (used when verl is not installed)."""

    token_ids: list[int]
    log_probs: list[float] | None = None
    stop_reason: str | None = "completed"
    extra_fields: dict[str, Any] = field(default_factory=dict)


class ScriptedServerManager:
    """verl's ``server_manager`` with a scripted policy for the toy world: search the thing's
    code, then answer with the code the results show (or ``wrong``). Replies are token ids,
    *character by character* (never how the tokenizer splits them: a re-tokenized sequence
    cannot pass for the sampled one), with a log-prob per token, like vLLM returns them.

    ``honour_stop``: cut at the first stop string, as vLLM does with
    ``include_stop_str_in_output`` (no end-of-turn token); otherwise return junk after the
    action and an end-of-turn token, as a server that ignores stop strings would.
    """

    def __init__(self, tokenizer: Any, *, wrong: bool = False, honour_stop: bool = True):
        self.tok, self.wrong, self.honour_stop = tokenizer, wrong, honour_stop
        self.requests: list[dict[str, Any]] = []
        self.replies: list[str] = []

    def reply(self, prompt: str) -> str:
        name = re.findall(r"What is the code of (\w+)\?", prompt)[-1]
        codes = re.findall(rf"The code of {name} is (\d+)", prompt)
        if not codes:
            return f"<think>I need the code of {name}.</think>\n<search>{name} code</search>"
        return f"<think>Found it.</think>\n<answer>{'000' if self.wrong else codes[-1]}</answer>"

    def char_ids(self, text: str) -> list[int]:
        return [i for ch in text for i in self.tok(ch, add_special_tokens=False)["input_ids"]]

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict, **_: Any
    ):
        self.requests.append({"id": request_id, "prompt_ids": prompt_ids, **sampling_params})
        text = self.reply(self.tok.decode(prompt_ids, skip_special_tokens=False))
        self.replies.append(text)
        if self.honour_stop:
            ids = self.char_ids(text)
        else:
            ids = self.char_ids(text + "\nand some more text") + [self.tok.eos_token_id]
        ids = ids[: sampling_params["max_tokens"]]
        logps = [-0.25 - 0.001 * i for i in range(len(ids))]
        if HAVE_VERL:
            from verl.workers.rollout.replica import TokenOutput

            return TokenOutput(token_ids=ids, log_probs=logps, stop_reason="completed")
        return _Output(ids, logps)


@pytest.fixture(scope="module")
def server(toy):
    index = BM25Search.load(toy.index)
    with BackgroundServer(create_app(index)) as srv:
        yield srv
    index.close()


@pytest.fixture(scope="module")
def tokenizer(toy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(toy.model)


@pytest.fixture(scope="module")
def bundle(toy, server, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verl_bundle")
    cfg = VerlExportConfig.model_validate(
        {
            "tasks": str(toy.tasks),
            "search": {"kind": "bm25", "path": str(toy.index)},
            "episode": {"max_turns": 4, "max_tokens": 128, "prompt": "compact"},
            "verl": {"search_url": server.url + "/retrieve", "val_size": 4},
        }
    )
    export_bundle(cfg, out)
    return out


def _rows(bundle: Path, split: str = "train") -> list[dict]:
    return pq.read_table(bundle / f"{split}.parquet").to_pylist()


def _episode(bundle: Path) -> EpisodeSettings:
    entry = yaml.safe_load((bundle / "agent_loop.yaml").read_text())[0]
    return EpisodeSettings.model_validate(entry["episode"])


def _check_mask(ep, tok, manager: ScriptedServerManager) -> None:
    """Mask-1 runs decode to exactly what the policy sampled; mask-0 tokens are the rest."""
    ids, mask = ep.response_ids, ep.response_mask
    assert len(ids) == len(mask) and set(mask) <= {0, 1}
    runs, cur = [], []
    for i, m in zip(ids, mask, strict=True):
        if m:
            cur.append(i)
        elif cur:
            runs, cur = [*runs, cur], []
    runs += [cur] if cur else []
    sampled = [manager.char_ids(text) for text in manager.replies]
    assert runs == sampled  # the very ids the server returned, turn by turn
    env = tok.decode([i for i, m in zip(ids, mask, strict=True) if not m])
    assert env.count("<information>") == len(runs) - 1  # every observation is masked out


# ----------------------------------------------------------------- our loop via a server manager


@pytest.mark.parametrize("honour_stop", [True, False])
def test_episode_through_a_server_manager(bundle, server, tokenizer, honour_stop) -> None:
    row = _rows(bundle)[0]
    task = task_from_row(row)
    manager = ScriptedServerManager(tokenizer, honour_stop=honour_stop)
    search = RetrieverClient(server.url, topk=3)
    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True}

    async def go():
        try:
            return await run_verl_episode(
                task, server_manager=manager, sampling_params=sampling, tokenizer=tokenizer,
                search=search, episode=_episode(bundle), response_length=2048,
            )  # fmt: skip
        finally:
            await search.aclose()

    ep = asyncio.run(go())
    traj = ep.trajectory
    assert [t.action.kind for t in traj.turns] == ["search", "answer"]
    assert exact_match(traj.final_answer, task.answers) == 1.0
    assert ep.extra_fields[ANSWER_KEY] == traj.final_answer
    assert ep.extra_fields["searchprime_stop_cuts"] == (0 if honour_stop else 2)
    tok = tokenizer
    render = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert tok.decode(ep.prompt_ids) == render  # the loop's first input is the row's prompt
    _check_mask(ep, tok, manager)
    # each turn's request: the whole sequence so far, verl's settings + the turn's budget/stops
    second = manager.requests[1]
    assert (
        second["prompt_ids"]
        == ep.prompt_ids + ep.response_ids[: len(second["prompt_ids"]) - len(ep.prompt_ids)]
    )
    assert second["temperature"] == 1.0 and second["max_tokens"] == 128
    assert "</answer>" in second["stop"] and second["include_stop_str_in_output"] is True
    assert len({r["id"] for r in manager.requests}) == 1  # one sticky session per episode
    lp = ep.response_logprobs
    assert all(x == 0.0 for x, m in zip(lp, ep.response_mask, strict=True) if not m)
    assert all(x < 0 for x, m in zip(lp, ep.response_mask, strict=True) if m)
    assert not any(math.isnan(x) for x in lp)


def test_cut_at_stop_keeps_the_token_that_completes_it(tokenizer) -> None:
    ids = tokenizer("<search> q </search> junk <answer>", add_special_tokens=False)["input_ids"]
    kept, lps, cut = cut_at_stop(ids, [0.0] * len(ids), ["</search>"], tokenizer.decode)
    assert cut and tokenizer.decode(kept).endswith("</search>") and len(lps) == len(kept)
    assert cut_at_stop(kept, None, ["</search>"], tokenizer.decode) == (kept, None, False)


def test_bp_rows_give_the_question_to_the_loop(toy, tmp_path) -> None:
    cfg = VerlExportConfig.model_validate({"tasks": str(toy.tasks), "verl": {"layout": "bp"}})
    export_bundle(cfg, tmp_path)
    row = _rows(tmp_path)[0]
    task = task_from_row({**row, "raw_prompt": row["prompt"]})
    assert task.question == row["prompt"][0]["content"] and task.id == row["extra_info"]["id"]
    assert task.answers == [row["extra_info"]["answer"]]


# ------------------------------------------------------------------------- verl's own classes


def _data_config(tmp_path: Path, max_prompt_length: int = 1024):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "max_prompt_length": max_prompt_length,
            "filter_overlong_prompts": True,
            "return_raw_chat": True,
            "truncation": "error",
            "cache_dir": str(tmp_path / "cache"),
            "apply_chat_template_kwargs": {},
        }
    )


@needs_verl
@pytest.mark.parametrize("layout", ["searchprime", "bp"])
def test_parquet_loads_as_rlhf_dataset(toy, tokenizer, tmp_path, layout) -> None:
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cfg = VerlExportConfig.model_validate({"tasks": str(toy.tasks), "verl": {"layout": layout}})
    export_bundle(cfg, tmp_path)
    rows = _rows(tmp_path)
    tasks = {t.id: t for t in load_tasks(toy.tasks)}
    ds = RLHFDataset(str(tmp_path / "train.parquet"), tokenizer, _data_config(tmp_path))
    assert len(ds) == len(rows)
    for i in (0, len(ds) - 1):
        item = ds[i]
        assert list(item["raw_prompt"]) == rows[i]["prompt"]
        assert item["data_source"] == rows[i]["data_source"]
        assert item["agent_name"] == "searchprime_agent"
        assert item["index"] == rows[i]["extra_info"]["index"]
        task = task_from_row(item)  # what the agent loop will run
        assert (task.question, task.answers) == (tasks[task.id].question, tasks[task.id].answers)


def _dataproto(tok, prompt_ids, response_ids, row: dict, extra: dict | None = None):
    import numpy as np
    import torch
    from verl import DataProto

    prompts = torch.tensor([prompt_ids])
    responses = torch.tensor([response_ids])
    mask = torch.ones(1, len(prompt_ids) + len(response_ids), dtype=torch.long)
    non = {
        "data_source": np.array([row["data_source"]], dtype=object),
        "reward_model": np.array([row["reward_model"]], dtype=object),
        "extra_info": np.array([dict(row["extra_info"])], dtype=object),
    }
    if extra is not None:
        non["tool_extra_fields"] = np.array([extra], dtype=object)
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask},
        non_tensors=non,
    )


def _on_verls_loop(coro):
    """Run ``coro`` on the event loop verl's classes captured (``verl.utils.ray_utils``)."""
    from verl.utils.ray_utils import get_event_loop

    return get_event_loop().run_until_complete(coro)


def _reward_manager(bundle: Path, tok):
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": str(bundle / "reward.py"),
                    "name": "compute_score",
                }
            }
        }  # fmt: skip
    )
    fn = get_custom_reward_fn(config)
    return get_reward_manager_cls("naive")(config, tok, fn)


@needs_verl
def test_verl_reward_manager_with_our_reward_equals_em(bundle, tokenizer) -> None:
    tok = tokenizer
    manager = _reward_manager(bundle, tok)
    rows = _rows(bundle)
    prompt_ids = tok("Question: ?", add_special_tokens=False)["input_ids"]
    cases = 0
    for row in rows[:8]:
        gold = row["reward_model"]["ground_truth"]["target"][0]
        for answer in (gold, f" {gold}. ", "000", f"{gold} {gold}"):
            for text in (
                f"<think>t</think>\n<answer>{answer}</answer><|im_end|>",
                f"<search>q</search><|im_end|>\n<|im_start|>user\n<information>\nDoc 1: "
                f"<answer>x</answer>\n</information><|im_end|>\n<|im_start|>assistant\n"
                f"<answer>{answer}</answer><|im_end|>",
            ):
                ids = tok(text, add_special_tokens=False)["input_ids"]
                data = _dataproto(tok, prompt_ids, ids, row)
                result = _on_verls_loop(manager.run_single(data))
                assert result["reward_score"] == exact_match(answer, [gold]), text
                assert result["reward_extra_info"]["em"] == result["reward_score"]
                cases += 1
    assert cases == 64


@needs_verl
@pytest.mark.parametrize("wrong", [False, True])
def test_agent_loop_episodes_then_verl_reward(bundle, server, tokenizer, tmp_path, wrong) -> None:
    import hydra
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopOutput,
        DictConfigWrap,
        _agent_loop_registry,
    )
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from searchprime.rl.verl.agent_loop import close_search_clients

    tok = tokenizer
    entry = OmegaConf.load(bundle / "agent_loop.yaml")[0]  # as AgentLoopWorker reads it
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {"rollout": {"prompt_length": 1024, "response_length": 1024}},
            "data": _data_config(tmp_path),
        }  # fmt: skip
    )
    ds = RLHFDataset(str(bundle / "train.parquet"), tok, config.data)
    reward = _reward_manager(bundle, tok)
    _agent_loop_registry[entry.name] = entry
    for i in range(3):
        item = ds[i]
        manager = ScriptedServerManager(tok, wrong=wrong)
        loop = hydra.utils.instantiate(
            config=_agent_loop_registry[item["agent_name"]],
            trainer_config=DictConfigWrap(config=config), server_manager=manager, tokenizer=tok,
            processor=None, hf_model_type=None, dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data), tools=None,
        )  # fmt: skip
        kwargs = {k: v for k, v in item.items() if k != "dummy_tensor"}
        sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True}
        out = _on_verls_loop(loop.run(sampling, **kwargs))
        assert isinstance(out, AgentLoopOutput)
        assert out.num_turns == 4  # question, search, observation, answer
        assert tok.decode(out.prompt_ids) == tok.apply_chat_template(
            list(item["raw_prompt"]), tokenize=False, add_generation_prompt=True
        )
        _check_mask(out, tok, manager)
        assert len(out.response_logprobs) == len(out.response_ids)
        gold = item["reward_model"]["ground_truth"]["target"]
        # verl's reward manager on the episode, the loop's extra_fields merged as verl does
        data = _dataproto(tok, out.prompt_ids, out.response_ids, item, extra=out.extra_fields)
        got = _on_verls_loop(reward.run_single(data))["reward_score"]
        assert got == exact_match(out.extra_fields[ANSWER_KEY], list(gold)) == float(not wrong)
        # and from the decoded response alone (verl's legacy path, no extra_fields)
        data = _dataproto(tok, out.prompt_ids, out.response_ids, item)
        assert _on_verls_loop(reward.run_single(data))["reward_score"] == got
    _on_verls_loop(close_search_clients())


@needs_verl
def test_run_grpo_settings_compose_with_verls_config(bundle) -> None:
    """Every override run_grpo.sh passes exists in verl's own Hydra config."""
    import importlib.resources

    from hydra import compose, initialize_config_dir

    script = (bundle / "run_grpo.sh").read_text()
    body = script[script.index("-m verl.trainer.main_ppo") :].split('"$@"')[0]
    args = shlex.split(body.replace("\\\n", " "))[2:]
    env = {"$HERE": str(bundle), "$MODEL": "/models/policy", "$ROLLOUT": "vllm",
           "$N_GPUS": "8", "$NNODES": "1"}  # fmt: skip
    overrides = []
    for arg in args:
        for k, v in env.items():
            arg = arg.replace(k, v)
        overrides.append(arg)
    conf_dir = importlib.resources.files("verl.trainer") / "config"
    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
    r = cfg.actor_rollout_ref
    assert (r.rollout.n, cfg.data.train_batch_size, r.actor.optim.lr) == (8, 32, 1e-6)
    assert (r.actor.kl_loss_coef, r.actor.kl_loss_type) == (0.001, "low_var_kl")
    assert (r.actor.clip_ratio, r.actor.entropy_coeff, r.actor.loss_agg_mode) == (
        0.2, 0.001, "token-mean",
    )  # fmt: skip
    assert (r.rollout.temperature, r.rollout.val_kwargs.temperature) == (1.0, 0.4)
    assert r.rollout.agent.agent_loop_config_path == str(bundle / "agent_loop.yaml")
    assert cfg.reward.custom_reward_function.path == str(bundle / "reward.py")


@needs_verl
@pytest.mark.parametrize(
    "source, layout", [("sandbox", "searchprime"), ("mhqa", "searchprime"), ("mhqa", "bp")]
)
def test_sandbox_and_bp_sample_bundles_validate(
    source, layout, shared_data, tokenizer, tmp_path
) -> None:
    """Every row loads in RLHFDataset (none filtered as overlong) and verl's reward manager
    gives a gold answer 1 and a wrong one 0, whatever the row's data source."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from searchprime.world import WorldConfig, build_world

    if source == "sandbox":
        build_world(WorldConfig(seed=3, entities=300, tasks=200), tmp_path / "w")
        verl = {"layout": layout, "val_tasks": str(tmp_path / "w" / "tasks" / "dev.jsonl")}
        tasks = tmp_path / "w" / "tasks" / "train.jsonl"
    else:
        verl, tasks = {"layout": layout}, shared_data / "mhqa_sample.json"
    out = tmp_path / "bundle"
    card = export_bundle(VerlExportConfig.model_validate({"tasks": str(tasks), "verl": verl}), out)
    reward = _reward_manager(out, tokenizer)
    prompt_ids = tokenizer("Question: ?", add_special_tokens=False)["input_ids"]
    for split in ("train", "val"):
        rows = _rows(out, split)
        # the tiny tokenizer spends ~2.5x a real one's tokens on the full system prompt
        config = _data_config(tmp_path, max_prompt_length=2048)
        ds = RLHFDataset(str(out / f"{split}.parquet"), tokenizer, config)
        assert len(ds) == len(rows) == card["rows"][split]
        for i in range(0, len(ds), max(1, len(ds) // 12)):
            item = ds[i]
            gold = task_from_row(item).answers[0]
            for answer, want in ((gold, 1.0), ("no such answer", 0.0)):
                ids = tokenizer(f"<answer>{answer}</answer>", add_special_tokens=False)["input_ids"]
                data = _dataproto(tokenizer, prompt_ids, ids, item)
                assert _on_verls_loop(reward.run_single(data))["reward_score"] == want
    mhqa = {"2wiki", "Bamboogle", "hotpotqa", "musique", "nq", "popqa", "tq"}
    assert set(card["data_sources"]) == ({"sandbox"} if source == "sandbox" else mhqa)
