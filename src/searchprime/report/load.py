"""Build a :class:`Report` from a run folder or from explicit files.

A run folder (what ``experiment`` writes) holds ``report.json``, ``eval/<model>.labelled.jsonl``
(or ``eval/<model>.jsonl``), ``rl/<model>/steps.jsonl`` and ``world/tasks/*.jsonl`` (task meta:
hops and traps). Explicit files are sorted by name: ``*.json`` is a ``report.json``,
``steps.jsonl`` an RL step log (named by its folder), any other ``*.jsonl`` one model's
trajectories (named by its stem), ``--tasks`` a task file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from searchprime.errors import ConfigError, RecordError
from searchprime.records import (
    BEHAVIORS,
    Task,
    Trajectory,
    iter_json_lines,
    read_jsonl,
    validation_to_record_error,
)
from searchprime.report.model import ArmSummary, Report, Value
from searchprime.report.parse import parse_arm, parse_claims, parse_comparisons, parse_stages
from searchprime.report.trajview import traj_view

__all__ = ["load_files", "load_report", "load_run", "summarize_trajectories"]

#: The report name of a model after RL (as ``experiment`` names it).
RL_SUFFIX = "+rl"
STEPS_FILE = "steps.jsonl"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordError(path, exc.lineno, "<json>", f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RecordError(path, None, "<json>", "expected an object")
    return data


def read_steps(path: Path) -> list[dict[str, Any]]:
    """RL step rows; a line cut by a crash at the end is skipped."""
    return [row for _, row in iter_json_lines(path) if row]


def _read_tasks(paths: Iterable[Path], wanted: set[str]) -> dict[str, Task]:
    """The tasks of ``wanted`` ids found in ``paths`` (other lines are not validated)."""
    out: dict[str, Task] = {}
    for path in paths:
        for lineno, obj in iter_json_lines(path):
            if str(obj.get("id")) in wanted:
                try:
                    task = Task.model_validate(obj)
                except ValidationError as exc:
                    raise validation_to_record_error(exc, path, lineno) from None
                out[task.id] = task
    return out


def _seconds(data: dict[str, Any]) -> dict[str, float]:
    raw = data.get("seconds") if isinstance(data.get("seconds"), dict) else {}
    return {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}


def _mean(xs: Sequence[float]) -> Value | None:
    return Value(mean=sum(xs) / len(xs), n=len(xs)) if xs else None


def summarize_trajectories(name: str, trajs: list[Trajectory]) -> ArmSummary:
    """Headline numbers of one model from its trajectories alone (no ``report.json``)."""
    from searchprime.eval.metrics import split_golds
    from searchprime.eval.score import score_one

    scores = [t.scores or score_one(t, split_golds(t.answers)) for t in trajs]
    turns = [x for t in trajs for x in t.turns]
    labelled = [t for t in trajs if t.labels is not None]
    behaviors = {
        b: Value(mean=sum(t.labels.has(b) for t in labelled) / len(labelled), n=len(labelled))
        for b in _behavior_names(trajs)
        if labelled
    }
    return ArmSummary(
        name=name,
        n=len(trajs),
        em=_mean([s.em or 0.0 for s in scores]),
        f1=_mean([s.f1 or 0.0 for s in scores]),
        valid_turns=_mean([float(x.action.kind != "invalid") for x in turns]),
        answered=_mean([float(t.termination == "answer") for t in trajs]),
        turns=_mean([float(len(t.turns)) for t in trajs]),
        searches=_mean([float(t.n_searches) for t in trajs]),
        behavior=behaviors,
    )


def _behavior_names(trajs: Iterable[Trajectory]) -> list[str]:
    names = list(BEHAVIORS)
    for t in trajs:
        if t.labels is not None:
            names += [n for n in t.labels.behaviors if n not in names]
    return names


def _add_steps(report: Report, path: Path) -> None:
    """An RL step log, under the name of the RL'd model (``<start>+rl``) when it is reported."""
    model = path.parent.name
    model = model + RL_SUFFIX if model + RL_SUFFIX in report.arms else model
    if rows := read_steps(path):
        report.rl_steps[model] = rows


def _eval_file(run: Path, name: str) -> Path | None:
    for path in (run / "eval" / f"{name}.labelled.jsonl", run / "eval" / f"{name}.jsonl"):
        if path.exists():
            return path
    return None


def _file_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".labelled"):
        name = name.removesuffix(suffix)
    return name


def _add_trajectories(
    report: Report, trajs_by_model: dict[str, list[Trajectory]], tasks: dict[str, Task]
) -> None:
    for model, trajs in trajs_by_model.items():
        report.trajectories += [traj_view(t, model, tasks.get(t.task_id)) for t in trajs]
        if model in report.arms:
            report.arms[model].has_trajectories = True
        names = _behavior_names(trajs)
        report.behaviors += [b for b in names if b not in report.behaviors]


def load_run(run_dir: str | Path, *, trajectories: bool = True) -> Report:
    """The report of an ``experiment`` run folder."""
    run = Path(run_dir)
    summary = run / "report.json"
    if not summary.exists():
        raise ConfigError(f"{run}: no report.json (is this an experiment run folder?)")
    data = _read_json(summary)
    report = Report(
        name=str(data.get("name") or run.name),
        source=str(run),
        arms={k: parse_arm(k, v) for k, v in (data.get("arms") or {}).items()},
        comparisons=parse_comparisons(data.get("comparisons")),
        claims=parse_claims(data.get("claims")),
        seconds=_seconds(data),
        stages=parse_stages(data.get("stages")),
    )
    partial = data.get("partial")
    if isinstance(partial, dict):
        report.notes.append(
            f"Partial: the study has not finished; written after {partial.get('after')!s:.80} "
            "was evaluated. Run the same experiment again to continue it."
        )
    for name, arm in report.arms.items():
        if note := arm.trainings_note():
            report.notes.append(
                f"{name}: its {note}: a carried study trained it again on another machine, "
                "and the training did not make the same bits."
            )
    for steps in sorted(run.glob(f"rl/*/{STEPS_FILE}")):
        _add_steps(report, steps)
    trajs_by_model: dict[str, list[Trajectory]] = {}
    if trajectories:
        for name in report.arms:
            if (path := _eval_file(run, name)) is not None:
                trajs_by_model[name] = list(read_jsonl(path, Trajectory))
    wanted = {t.task_id for ts in trajs_by_model.values() for t in ts}
    tasks = _read_tasks(sorted(run.glob("world/tasks/*.jsonl")), wanted) if wanted else {}
    _add_trajectories(report, trajs_by_model, tasks)
    from searchprime.report.stats import add_uncertainty

    add_uncertainty(report, trajs_by_model)
    return report


def load_files(
    files: Sequence[str | Path],
    *,
    tasks: str | Path | None = None,
    name: str | None = None,
) -> Report:
    """A report from explicit files (see the module doc for how each is read)."""
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"{p}: no such file")
    summaries = [p for p in paths if p.suffix == ".json"]
    if len(summaries) > 1:
        raise ConfigError(f"give at most one report.json, got {len(summaries)}")
    data = _read_json(summaries[0]) if summaries else {}
    report = Report(
        name=name or str(data.get("name") or "report"),
        source=", ".join(str(p) for p in paths),
        arms={k: parse_arm(k, v) for k, v in (data.get("arms") or {}).items()},
        comparisons=parse_comparisons(data.get("comparisons")),
        claims=parse_claims(data.get("claims")),
        seconds=_seconds(data),
        stages=parse_stages(data.get("stages")),
    )
    trajs_by_model: dict[str, list[Trajectory]] = {}
    for p in paths:
        if p.name != STEPS_FILE and p.suffix != ".json":
            model = _file_name(p)
            if model in trajs_by_model:
                raise ConfigError(f"{p}: a second trajectories file for model {model!r}")
            trajs_by_model[model] = list(read_jsonl(p, Trajectory))
            if model not in report.arms:
                report.arms[model] = summarize_trajectories(model, trajs_by_model[model])
    for p in paths:
        if p.name == STEPS_FILE:
            _add_steps(report, p)
    wanted = {t.task_id for ts in trajs_by_model.values() for t in ts}
    task_map = _read_tasks([Path(tasks)], wanted) if tasks is not None else {}
    _add_trajectories(report, trajs_by_model, task_map)
    from searchprime.report.stats import add_uncertainty

    add_uncertainty(report, trajs_by_model)
    return report


def load_report(sources: Sequence[str | Path], *, tasks: str | Path | None = None) -> Report:
    """A run folder (one directory) or explicit files."""
    if len(sources) == 1 and Path(sources[0]).is_dir():
        if tasks is not None:
            raise ConfigError("--tasks: a run folder brings its own tasks")
        return load_run(sources[0])
    if any(Path(s).is_dir() for s in sources):
        raise ConfigError("give one run folder, or files only")
    return load_files(sources, tasks=tasks)
