"""A toy search task for RL tests: codes of named things, found only by searching.

``make_toy(dir)`` writes a corpus (one page per thing: "The code of Kalo is 417."), a BM25
index, tasks ("What is the code of Kalo?"), a tiny from-scratch policy and SFT data that is a
50/50 mix, for every task, of an episode that searches before answering and one that answers
at once.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from searchprime.agent import prompts
from searchprime.llm.base import SamplingParams
from searchprime.records import SearchHit
from searchprime.rl.rewards import register_reward
from searchprime.rl.sampler import Sampled
from searchprime.search.format import format_hits

SYLL = ["ka", "lo", "mi", "ra", "ten", "vor", "san", "del", "qu", "ix", "bel", "tor", "an"]


@register_reward("toy_searched")
def searched_first(traj) -> float:
    """1 when the episode's first action is a search, else 0."""
    return float(bool(traj.turns) and traj.turns[0].action.kind == "search")


@dataclass
class Toy:
    root: Path
    corpus: Path
    index: Path
    tasks: Path
    model: Path
    sft_data: Path


def _names(n: int, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    while len(seen) < n:
        seen.add("".join(rng.choice(SYLL) for _ in range(3)).capitalize())
    return sorted(seen)


def make_toy(root: Path, *, n: int = 24, seed: int = 0, sft: bool = True) -> Toy:
    from searchprime.search.bm25 import build_bm25_index
    from searchprime.train.models import default_tiny_texts, init_tiny

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = _names(n, rng)
    codes = {name: str(rng.randint(100, 999)) for name in names}
    corpus = root / "corpus.jsonl"
    with corpus.open("w") as fh:
        for i, name in enumerate(names):
            fh.write(
                json.dumps(
                    {"id": str(i), "title": name, "text": f"The code of {name} is {codes[name]}."}
                )
                + "\n"
            )
    index = build_bm25_index(corpus, root / "index")
    tasks = root / "tasks.jsonl"
    with tasks.open("w") as fh:
        for i, name in enumerate(names):
            fh.write(
                json.dumps(
                    {
                        "id": f"t{i}",
                        "question": f"What is the code of {name}?",
                        "answers": [codes[name]],
                    }
                )
                + "\n"
            )
    system = prompts.system_prompt("none", "compact")
    rows = []
    texts = []
    for i, name in enumerate(names):
        q = f"What is the code of {name}?"
        prompt = [
            {"role": "system", "content": system},
            {"role": "user", "content": prompts.first_user_message(q)},
        ]
        hit = SearchHit(doc_id=str(i), title=name, text=f"The code of {name} is {codes[name]}.")
        obs = prompts.information_message(format_hits([hit]))
        searched = [
            {"role": "assistant", "content": f"<search>{name} code</search>"},
            {"role": "user", "content": obs},
            {"role": "assistant", "content": f"<answer>{codes[name]}</answer>"},
        ]
        direct = [{"role": "assistant", "content": f"<answer>{codes[name]}</answer>"}]
        # both for every task: the policy learns a coin flip, not which task gets which
        for completion in (searched, direct):
            rows.append({"prompt": prompt, "completion": completion})
            texts += [m["content"] for m in prompt + completion]
    sft_data = root / "sft" / "train.jsonl"
    sft_data.parent.mkdir(parents=True, exist_ok=True)
    sft_data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = init_tiny(root / "tiny", texts=texts * 4 + default_tiny_texts(100), seed=seed)
    return Toy(root, corpus, index, tasks, model, sft_data)


class ScriptedSampler:
    """Returns scripted texts as *character-by-character* token ids (never how the tokenizer
    would split them), so a re-tokenized sequence could not pass for the sampled one."""

    name = "scripted"

    def __init__(self, tokenizer, texts: list[str], *, eos: list[bool] | None = None):
        self.tok = tokenizer
        self.texts = list(texts)
        self.eos = eos or [True] * len(texts)
        self.calls: list[list[int]] = []

    def char_ids(self, text: str) -> list[int]:
        ids = []
        for ch in text:
            ids += self.tok(ch, add_special_tokens=False)["input_ids"]
        return ids

    async def sample(self, prompt_ids: list[int], params: SamplingParams) -> Sampled:
        self.calls.append(list(prompt_ids))
        i = min(len(self.calls) - 1, len(self.texts) - 1)
        ids = self.char_ids(self.texts[i])
        if self.eos[i]:
            ids.append(self.tok.eos_token_id)
        return Sampled(ids=ids, logprobs=[-0.5] * len(ids))

    def sync_weights(self, model) -> float:
        return 0.0

    def describe(self) -> dict:
        return {"kind": "scripted"}

    async def aclose(self) -> None:
        return None
