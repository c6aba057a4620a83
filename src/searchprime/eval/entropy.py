"""Policy entropy: the mean per-token entropy of a model over its own generated tokens.

Teacher-forced: each trajectory is rendered exactly as SFT renders it
(:func:`~searchprime.data.samples.trajectory_samples`: one sequence per chained segment,
observations between the outputs) and tokenized with the chat template's assistant mask, as
TRL's ``SFTTrainer`` does with ``completion_only_loss`` and ``assistant_only_loss``. The tokens
that count are every turn's output and its end-of-turn token (invalid-format turns included:
the policy generated them); the prompt, observations and reminders never count.

At every counted position t the entropy is H_t = -sum_v p(v | x_<t) log p(v | x_<t), with
p = softmax(logits / temperature). Reported: the token-weighted mean over all counted tokens,
the same per turn number (1 = the first model call), and per trajectory (for CIs over tasks).
Sequences are padded on the right into batches of at most ``max_batch_tokens`` tokens (the
attention mask keeps padding out); logits are formed only at the positions that predict a
counted token (``logits_to_keep``, where the model takes it), which on multi-turn agents with
long observations is a small part of the sequence; a segment longer than ``max_length`` is
skipped and counted.

Trajectories are processed ``window`` at a time. With a ``journal`` (a JSONL file), each
finished trajectory's sums are appended to it, and a later call with the same journal skips the
trajectories it already holds: a pass that dies (a long study's session ends) resumes where it
stopped instead of starting over.

Needs the ``train`` extra (torch, transformers, trl); imported lazily.
"""

from __future__ import annotations

import inspect
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime._lazy import require
from searchprime.errors import ConfigError
from searchprime.records import JsonlWriter, Trajectory, read_jsonl

__all__ = [
    "EntropyReport",
    "TokenEntropy",
    "TrajectoryEntropy",
    "TrajectorySums",
    "encode_trajectory",
    "load_policy",
    "policy_entropy",
]


class TokenEntropy(BaseModel):
    """A token-weighted mean entropy (nats) and how many tokens it averages."""

    model_config = ConfigDict(extra="forbid")

    mean: float | None = Field(description="Mean entropy in nats; None without tokens.")
    tokens: int


class TrajectoryEntropy(TokenEntropy):
    """The mean entropy over one trajectory's counted tokens."""

    task_id: str
    attempt: int


class EntropyReport(BaseModel):
    """Policy entropy over a set of trajectories."""

    model_config = ConfigDict(extra="forbid")

    model: str
    temperature: float
    overall: TokenEntropy
    by_turn: dict[int, TokenEntropy] = Field(description="Turn number (from 1) -> entropy.")
    per_trajectory: list[TrajectoryEntropy] = Field(description="In input order.")
    sequences: int = Field(description="Token sequences (trajectory segments) evaluated.")
    skipped_too_long: int = Field(description="Segments over max_length tokens, left out.")


class TrajectorySums(BaseModel):
    """One trajectory's entropy sums: a line of the resume journal of :func:`policy_entropy`."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    attempt: int
    temperature: float
    total: float = Field(description="Sum of the counted tokens' entropies (nats).")
    tokens: int
    by_turn: dict[int, tuple[float, int]] = Field(
        default_factory=dict, description="Turn number -> (sum of entropies, tokens)."
    )
    sequences: int = 0
    skipped_too_long: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.attempt)


@dataclass
class _Seq:
    """One tokenized segment: ``turn_of[p]`` is the turn number of token p, 0 = not counted."""

    traj: int
    ids: list[int]
    turn_of: list[int]


def _training_template(tokenizer: Any) -> None:
    """Make sure the chat template marks assistant content (as ``train sft`` does)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    from searchprime.train.models import ensure_generation_template

    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"{tokenizer.name_or_path}: tokenizer has no chat template")
    ensure_generation_template(tokenizer)
    if not has_generation_markers(tokenizer.chat_template):
        patched = get_training_chat_template(tokenizer)
        if patched is None or not has_generation_markers(patched):
            raise ConfigError(
                f"{tokenizer.name_or_path}: the chat template has no {{% generation %}} markers, "
                "so the policy's tokens cannot be told from the observations"
            )
        tokenizer.chat_template = patched


def encode_trajectory(tokenizer: Any, traj: Trajectory) -> list[tuple[list[int], list[int]]]:
    """``(ids, turn_of)`` per segment of ``traj``; ``turn_of`` is 0 off the policy's tokens.

    The tokenizer's chat template must carry ``{% generation %}`` markers (see
    :func:`policy_entropy`, which ensures it).
    """
    from trl.data_utils import common_prefix_length

    from searchprime.data.samples import trajectory_samples
    from searchprime.llm.tokens import chat_dicts

    out = []
    # every turn the policy generated counts, invalid-format ones included
    for sample in trajectory_samples(traj, include_invalid=True):
        prompt = chat_dicts(sample.prompt)
        prompt_ids = tokenizer.apply_chat_template(
            prompt, tokenize=True, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        full = tokenizer.apply_chat_template(
            prompt + chat_dicts(sample.completion),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, mask = list(full["input_ids"]), list(full["assistant_masks"])
        start = common_prefix_length(prompt_ids, ids)
        turn_of = [0] * len(ids)
        span = -1
        for p in range(start, len(ids)):
            if mask[p] and (p == start or not mask[p - 1]):
                span += 1
            if mask[p] and span < len(sample.turns):
                turn_of[p] = sample.turns[span] + 1
        if span + 1 != len(sample.turns):
            raise ConfigError(
                f"trajectory {traj.task_id}#{traj.attempt}: the chat template marks {span + 1} "
                f"assistant spans for {len(sample.turns)} outputs of sample {sample.id}"
            )
        out.append((ids, turn_of))
    return out


def load_policy(
    path: str | os.PathLike[str], device: str | None = None, dtype: str = "auto"
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a Hugging Face checkpoint folder, in eval mode on ``device``
    (default: CUDA when available, else CPU)."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(path)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model: cannot load {os.fspath(path)!r}: {exc}") from None
    return model.to(device).eval(), tok


def _batches(seqs: list[_Seq], max_batch_tokens: int) -> list[list[_Seq]]:
    """Longest first; each batch's padded size (rows x longest) within the budget."""
    out: list[list[_Seq]] = []
    for s in sorted(seqs, key=lambda s: -len(s.ids)):
        if out and (len(out[-1]) + 1) * len(out[-1][0].ids) <= max_batch_tokens:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _keeps_logits(model: Any) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (transformers' causal LMs since 4.50)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _entropies(
    model: Any, batch: list[_Seq], temperature: float, pad_id: int, chunk: int, keep: bool
):
    """Per sequence: (entropy of each counted token, its turn number). ``keep``: the model
    takes ``logits_to_keep``."""
    torch = require("torch", "train")
    device = next(model.parameters()).device
    width = max(len(s.ids) for s in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    for r, s in enumerate(batch):
        ids[r, : len(s.ids)] = torch.tensor(s.ids)
        attn[r, : len(s.ids)] = 1
    turn_ofs = [torch.tensor(s.turn_of) for s in batch]
    positions = [torch.nonzero(t).squeeze(-1) for t in turn_ofs]
    # the logits at t-1 predict token t; only those rows of the vocabulary projection are needed
    # (every row's positions, so one index serves the whole batch)
    needed = torch.unique(torch.cat(positions) - 1)
    kwargs: dict[str, Any] = {"logits_to_keep": needed.to(device)} if keep else {}
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device), **kwargs).logits
        out = []
        for r, (pos, turn_of) in enumerate(zip(positions, turn_ofs, strict=True)):
            cols = torch.searchsorted(needed, pos - 1) if keep else pos - 1
            values = []
            for i in range(0, len(cols), chunk):
                z = logits[r, cols[i : i + chunk].to(device)].float() / temperature
                logp = torch.log_softmax(z, dim=-1)
                values.append(-(logp.exp() * logp).sum(-1).double().cpu())
            ent = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
            out.append((ent, turn_of[pos]))
    return out


def _read_journal(path: Path, temperature: float) -> dict[tuple[str, int], TrajectorySums]:
    """The sums a journal already holds; refuses one taken at another temperature."""
    if not path.exists():
        return {}
    done: dict[tuple[str, int], TrajectorySums] = {}
    # every record in file order (the last per key wins below), so the number is its line's
    for line, rec in enumerate(read_jsonl(path, TrajectorySums, latest=False), start=1):
        if rec.temperature != temperature:
            raise ConfigError(
                f"{path}: record {line} (task {rec.task_id}#{rec.attempt}): temperature "
                f"{rec.temperature} was journaled, this pass takes {temperature}; delete the "
                "journal to start over"
            )
        done[rec.key] = rec
    return done


def _window_sums(
    model: Any,
    tokenizer: Any,
    trajs: list[Trajectory],
    temperature: float,
    limit: int | None,
    max_batch_tokens: int,
    chunk: int,
    keep: bool,
) -> list[TrajectorySums]:
    """The sums of each trajectory of ``trajs``, their segments batched together."""
    seqs: list[_Seq] = []
    skipped = [0] * len(trajs)
    n_seqs = [0] * len(trajs)
    for i, traj in enumerate(trajs):
        for ids, turn_of in encode_trajectory(tokenizer, traj):
            if limit is not None and len(ids) > limit:
                skipped[i] += 1
            elif any(turn_of):
                seqs.append(_Seq(i, ids, turn_of))
                n_seqs[i] += 1
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sums = [
        TrajectorySums(
            task_id=t.task_id,
            attempt=t.attempt,
            temperature=temperature,
            total=0.0,
            tokens=0,
            sequences=n_seqs[i],
            skipped_too_long=skipped[i],
        )
        for i, t in enumerate(trajs)
    ]
    for batch in _batches(seqs, max_batch_tokens):
        for s, (ent, turns) in zip(
            batch, _entropies(model, batch, temperature, pad_id, chunk, keep), strict=True
        ):
            rec = sums[s.traj]
            rec.total += float(ent.sum())
            rec.tokens += len(ent)
            for turn in turns.unique().tolist():
                sel = ent[turns == turn]
                before, n = rec.by_turn.get(turn, (0.0, 0))
                rec.by_turn[turn] = (before + float(sel.sum()), n + len(sel))
    return sums


def _report(
    name: str, temperature: float, trajs: list[Trajectory], sums: list[TrajectorySums]
) -> EntropyReport:
    def mean(total: float, n: int) -> float | None:
        return total / n if n else None

    turn_sums: dict[int, float] = defaultdict(float)
    turn_counts: dict[int, int] = defaultdict(int)
    for rec in sums:
        for turn, (total, n) in rec.by_turn.items():
            turn_sums[turn] += total
            turn_counts[turn] += n
    tokens = sum(rec.tokens for rec in sums)
    return EntropyReport(
        model=name,
        temperature=temperature,
        overall=TokenEntropy(mean=mean(sum(rec.total for rec in sums), tokens), tokens=tokens),
        by_turn={
            t: TokenEntropy(mean=mean(turn_sums[t], turn_counts[t]), tokens=turn_counts[t])
            for t in sorted(turn_counts)
        },
        per_trajectory=[
            TrajectoryEntropy(
                task_id=t.task_id,
                attempt=t.attempt,
                mean=mean(rec.total, rec.tokens),
                tokens=rec.tokens,
            )
            for t, rec in zip(trajs, sums, strict=True)
        ],
        sequences=sum(rec.sequences for rec in sums),
        skipped_too_long=sum(rec.skipped_too_long for rec in sums),
    )


def policy_entropy(
    model: str | os.PathLike[str] | Any,
    trajs: Iterable[Trajectory],
    *,
    tokenizer: Any | None = None,
    device: str | None = None,
    temperature: float = 1.0,
    max_batch_tokens: int = 4096,
    max_length: int | None = None,
    chunk: int = 1024,
    window: int = 16,
    journal: str | os.PathLike[str] | None = None,
    on_done: Callable[[int], object] | None = None,
) -> EntropyReport:
    """Mean per-token entropy of ``model`` over the policy tokens of ``trajs``.

    ``model``: a checkpoint folder (loaded with :func:`load_policy` on ``device``), or a loaded
    ``transformers`` causal LM with its ``tokenizer`` (used on the device it is on).
    ``temperature``: the sampling temperature the entropy is taken at. ``max_length``: longest
    segment evaluated (default: the model's ``max_position_embeddings``). ``chunk``: positions
    whose full-vocabulary softmax is formed at once. ``window``: trajectories batched together
    (and journaled together). ``journal``: a JSONL file of finished trajectories' sums, read to
    resume and appended to. ``on_done(n)``: called as ``n`` more trajectories are finished
    (journaled ones included, first), for a progress bar.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    trajs = list(trajs)
    keys = [t.key for t in trajs]
    if journal is not None and len(set(keys)) != len(keys):
        raise ValueError("a journaled entropy pass needs one trajectory per (task_id, attempt)")
    done = _read_journal(Path(journal), temperature) if journal is not None else {}
    results: list[TrajectorySums | None] = [done.get(k) for k in keys]
    todo = [i for i, rec in enumerate(results) if rec is None]
    if on_done is not None and len(todo) < len(trajs):
        on_done(len(trajs) - len(todo))
    if isinstance(model, (str, os.PathLike)):
        name = os.fspath(model)
        if todo:
            model, loaded_tok = load_policy(model, device)
            tokenizer = tokenizer or loaded_tok
    else:
        name = str(getattr(model.config, "name_or_path", "") or type(model).__name__)
        if tokenizer is None:
            raise ValueError("a loaded model needs its tokenizer")
    if todo:
        _training_template(tokenizer)
        limit = max_length or getattr(model.config, "max_position_embeddings", None)
        keep = _keeps_logits(model)
        writer = JsonlWriter(journal) if journal is not None else None
        try:
            for start in range(0, len(todo), window):
                part = todo[start : start + window]
                sums = _window_sums(
                    model,
                    tokenizer,
                    [trajs[i] for i in part],
                    temperature,
                    limit,
                    max_batch_tokens,
                    chunk,
                    keep,
                )
                for i, rec in zip(part, sums, strict=True):
                    results[i] = rec
                    if writer is not None:
                        writer.write(rec)
                if on_done is not None:
                    on_done(len(part))
        finally:
            if writer is not None:
                writer.close()
    return _report(name, temperature, trajs, [r for r in results if r is not None])
