"""The agent loop: one policy answering one task by searching, turn by turn (DESIGN §4).

Protocol (compatible with the Behavior Priming scaffold):

* the model input starts with a system message (the rules, :func:`prompts.system_prompt`) and
  a user message holding ``Question: <question>``;
* each model response must hold exactly one action (:func:`actions.parse_action`):
  ``search`` -> the hits come back as a user message ``<information>...</information>``;
  ``summary`` -> the history is replaced by (system, question, the summary); ``answer`` -> done;
  anything else is ``invalid`` -> a format reminder, and the turn still counts;
* reminders follow the observation in the same user message: after
  ``search_reminder_after`` consecutive searches, when ``turns_left_reminder`` or fewer turns
  remain, and when the next model input passes ``context_budget_tokens`` (ask to summarise);
* a backend failure ends the trajectory with ``termination="error"``, ``error`` (one line,
  ``turn t: policy failed: Type: message``) and ``meta["error_kind"]`` (``"policy"`` or
  ``"search"``); it never raises (cancellation still propagates);
* every text that enters the trajectory (question, model output and reasoning, policy notes,
  search hits, error texts) passes :class:`~searchprime.records.sanitize.TextBoundary`: lone
  surrogates become U+FFFD (counted in ``meta["surrogates_replaced"]``) and registered secrets
  are masked, so the record can always be written and the next prompt always be sent.

``Trajectory.messages`` is append-only (every message ever produced); each turn's
``context`` lists the indices of the messages that formed its model input.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from searchprime.agent import prompts
from searchprime.agent.actions import ACTION_TAGS, parse_action
from searchprime.errors import LLMError
from searchprime.llm.base import LLM, SamplingParams, restore_stop
from searchprime.records import Message, SearchHit, Task, Trajectory, Turn
from searchprime.records.sanitize import TextBoundary, format_error, one_line
from searchprime.search.base import SearchBackend
from searchprime.search.format import format_hits

__all__ = ["ACTION_STOPS", "BACKEND_ERROR_KINDS", "AgentConfig", "default_sampling", "run_agent"]

#: ``meta["error_kind"]`` values of an error record caused by a backend (a rerun retries them).
BACKEND_ERROR_KINDS = frozenset({"policy", "search"})

#: Stop sequences that end a response right after its action.
ACTION_STOPS: tuple[str, ...] = tuple(f"</{tag}>" for tag in ACTION_TAGS)


def default_sampling() -> SamplingParams:
    """Sampling for agent turns: stops at the action close tags."""
    return SamplingParams(max_tokens=512, temperature=0.7, stop=list(ACTION_STOPS))


class AgentConfig(BaseModel):
    """Settings of the agent loop (recorded in every trajectory's ``agent`` field)."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(default=10, ge=1, description="Model calls per task, invalid included.")
    topk: int = Field(default=3, ge=1, le=100, description="Documents returned per search.")
    thinking: Literal["explicit", "internal", "none"] = Field(
        default="explicit",
        description="'explicit': <think>...</think> before the action (models without built-in "
        "reasoning); 'internal': the server returns reasoning separately (e.g. Qwen3); "
        "'none': actions only.",
    )
    prompt: prompts.PromptStyle = Field(
        default="full",
        description="'full': the Behavior Priming scaffold's system prompt (~400 tokens); "
        "'compact': the same protocol in ~80 tokens, for small fine-tuned policies; "
        "'full+handbook' / 'compact+handbook': either, then the four behaviors as advice "
        "(prompts.HANDBOOK).",
    )
    search_reminder_after: int = Field(
        default=4, ge=0, description="Remind after this many consecutive searches (0: never)."
    )
    turns_left_reminder: int = Field(
        default=2, ge=0, description="Remind when this many turns or fewer remain (0: never)."
    )
    context_budget_tokens: int | None = Field(
        default=6000,
        ge=1,
        description="Ask for a summary when the next model input passes this many tokens "
        "(counted with llm.count_tokens); None: never.",
    )
    context_limit_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Stop with termination 'context_limit' when a model input passes this many "
        "tokens even after summary reminders; None: no hard limit.",
    )
    sampling: SamplingParams = Field(
        default_factory=default_sampling,
        description="Decoding settings; the action close tags are always among the stops.",
    )

    @model_validator(mode="after")
    def _check(self) -> AgentConfig:
        missing = [s for s in ACTION_STOPS if s not in self.sampling.stop]
        if missing:
            self.sampling = self.sampling.model_copy(
                update={"stop": [*self.sampling.stop, *missing]}
            )
        if (
            self.context_limit_tokens is not None
            and self.context_budget_tokens is not None
            and self.context_limit_tokens < self.context_budget_tokens
        ):
            raise ValueError("context_limit_tokens must be >= context_budget_tokens")
        return self


def _describe(obj: Any) -> dict[str, Any]:
    try:
        described = obj.describe()
        return dict(described) if isinstance(described, dict) else {"describe": str(described)}
    except Exception as exc:  # noqa: BLE001 - a broken describe() must not lose the run
        return {
            "name": getattr(obj, "name", type(obj).__name__),
            "describe_error": format_error(exc),
        }


def _is_context_overflow(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, LLMError) and "context" in msg and ("length" in msg or "long" in msg)


class _Run:
    """State of one trajectory while it runs."""

    def __init__(self, question: str, llm: LLM, search: SearchBackend, config: AgentConfig):
        self.llm, self.search, self.cfg = llm, search, config
        self.messages: list[Message] = [
            Message(role="system", content=prompts.system_prompt(config.thinking, config.prompt)),
            Message(role="user", content=prompts.first_user_message(question)),
        ]
        self.context: list[int] = [0, 1]
        self.turns: list[Turn] = []
        self.consecutive_searches = 0
        self.next_tokens: int | None = None
        self.counting_failed = False

    async def count(self, indices: list[int], extra: Message | None = None) -> int | None:
        """Tokens of the messages at ``indices`` (+ ``extra``); None if the policy cannot say.

        Uses the backend's ``acount_tokens`` when it has one (OpenAIChat asks its server without
        blocking the event loop), else the synchronous ``count_tokens``.
        """
        if self.counting_failed:
            return None
        msgs = [self.messages[i] for i in indices]
        if extra is not None:
            msgs.append(extra)
        try:
            acount = getattr(self.llm, "acount_tokens", None)
            return int(await acount(msgs) if acount is not None else self.llm.count_tokens(msgs))
        except Exception:  # noqa: BLE001 - counting is advisory; never fail a run on it
            self.counting_failed = True
            return None

    def reminders(self, turn: int, over_budget: bool) -> list[str]:
        out = []
        n = self.cfg.search_reminder_after
        if n and self.consecutive_searches >= n:
            out.append(prompts.search_reminder(self.consecutive_searches))
        left = self.cfg.max_turns - (turn + 1)
        if self.cfg.turns_left_reminder and 0 < left <= self.cfg.turns_left_reminder:
            out.append(prompts.turns_left_reminder(left))
        if over_budget:
            out.append(prompts.SUMMARY_REMINDER)
        return out


async def run_agent(
    task: Task,
    llm: LLM,
    search: SearchBackend,
    config: AgentConfig | None = None,
    attempt: int = 0,
    seed: int | None = None,
) -> Trajectory:
    """Run one attempt of the agent on ``task`` and return its full trajectory.

    Never raises for backend failures: an LLM or search error ends the trajectory with
    ``termination="error"`` and ``error`` set (a context overflow reported by the server gives
    ``"context_limit"``).
    """
    cfg = config or AgentConfig()
    clean = TextBoundary()
    question = clean.text(task.question)
    run = _Run(question, llm, search, cfg)
    started = time.time()
    termination = "max_turns"
    error: str | None = None
    error_kind: str | None = None
    final_answer: str | None = None
    n_invalid = 0
    run.next_tokens = await run.count(run.context)
    seeded = cfg.sampling.model_copy(update={"seed": seed})

    for t in range(cfg.max_turns):
        context = list(run.context)
        input_tokens = run.next_tokens
        if (
            cfg.context_limit_tokens is not None
            and input_tokens is not None
            and input_tokens > cfg.context_limit_tokens
        ):
            termination = "context_limit"
            error = f"model input of {input_tokens} tokens > context_limit_tokens"
            break
        # the attempt seed goes unchanged into every turn's request: servers draw from it per
        # request (the prompts differ), and scripted teachers key their state on it
        params = cfg.sampling if seed is None else seeded
        t0 = time.perf_counter()
        try:
            completion = await llm.complete([run.messages[i] for i in context], params)
        except Exception as exc:  # noqa: BLE001 - backend failures become data
            termination = "context_limit" if _is_context_overflow(exc) else "error"
            error_kind = "policy" if termination == "error" else None
            error = one_line(f"turn {t}: policy failed: {format_error(exc)}")
            break
        latency = time.perf_counter() - t0
        output = restore_stop(clean.text(completion.text or ""), params)
        action = parse_action(output, cfg.thinking)
        run.messages.append(Message(role="assistant", content=output))
        out_idx = len(run.messages) - 1
        turn = Turn(
            index=t,
            context=context,
            input_tokens=input_tokens if input_tokens is not None else completion.prompt_tokens,
            output=output,
            reasoning=clean.optional(completion.reasoning),
            action=action,
            output_tokens=completion.completion_tokens,
            latency_s=completion.latency_s or latency,
            policy_meta=clean.value(dict(completion.meta)),
        )
        run.turns.append(turn)

        if action.kind == "answer":
            final_answer = action.content
            termination = "answer"
            break

        if action.kind == "search":
            s0 = time.perf_counter()
            try:
                results = await search.search([action.content], cfg.topk)
                hits = [_hit(h, clean) for h in (results[0] if results else [])]
            except Exception as exc:  # noqa: BLE001 - backend failures become data
                turn.search_latency_s = time.perf_counter() - s0
                termination, error_kind = "error", "search"
                error = one_line(f"turn {t}: search failed: {format_error(exc)}")
                break
            turn.search_latency_s = time.perf_counter() - s0
            turn.hits = hits
            run.consecutive_searches += 1
            observation = prompts.information_message(format_hits(hits))
            next_context = [*context, out_idx]
        elif action.kind == "summary":
            run.consecutive_searches = 0
            observation = prompts.SUMMARY_ACK
            next_context = [0, 1, out_idx]
        else:
            n_invalid += 1
            observation = prompts.FORMAT_REMINDER
            next_context = [*context, out_idx]

        reminders = run.reminders(t, over_budget=False)
        draft = Message(role="user", content=prompts.with_reminders(observation, reminders))
        tokens = await run.count(next_context, draft)
        if cfg.context_budget_tokens is not None and tokens is not None:
            if tokens > cfg.context_budget_tokens:
                reminders = run.reminders(t, over_budget=True)
                draft = Message(role="user", content=prompts.with_reminders(observation, reminders))
                tokens = await run.count(next_context, draft)
        run.messages.append(draft)
        turn.observation = draft.content
        run.context = [*next_context, len(run.messages) - 1]
        run.next_tokens = tokens

    finished = time.time()
    meta: dict[str, Any] = {
        "seed": seed,
        "elapsed_s": round(finished - started, 6),
        "n_invalid": n_invalid,
    }
    if error_kind is not None:
        meta["error_kind"] = error_kind
    traj = Trajectory(
        task_id=clean.text(task.id),
        attempt=attempt,
        question=question,
        answers=[clean.text(a) for a in task.answers],
        data_source=clean.optional(task.data_source),
        policy=clean.value(_describe(llm)),
        search=clean.value(_describe(search)),
        agent=cfg.model_dump(mode="json"),
        messages=run.messages,
        turns=run.turns,
        final_answer=final_answer,
        termination=termination,
        error=error,
        started_at=started,
        finished_at=finished,
        meta=meta,
    )
    if clean.replaced:
        traj.meta["surrogates_replaced"] = clean.replaced
    return traj


def _hit(hit: Any, clean: TextBoundary) -> SearchHit:
    """A search hit with every text cleaned (a backend may also hand back a plain dict)."""
    if not isinstance(hit, SearchHit):
        hit = SearchHit.model_validate(hit)
    return clean.model(hit)
