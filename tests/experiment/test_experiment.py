"""The whole study (RL from the base included) runs end to end on the tiny fixture model, and a
rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.experiment import ExperimentConfig, report_rows, run_experiment
from searchprime.records import Task, Trajectory, read_jsonl

SMOKE = """
name: smoke
world: {seed: 1, entities: 300, tasks: 900}
teachers: {base_pool: 40, prime_pool: 120}
sft: {model: tiny, base_n: 6, base_stratify: hops, epochs: 1, batch_size: 4, max_length: 4096,
      trl: {max_steps: 2}}
arms: [{name: rand, strategy: random, n: 4}]
eval: {dev_n: 4, max_turns: 3, max_batch: 4, samples: 3, samples_tasks: 2}
rl: {start_from: [base], tasks: 4, max_steps: 2, num_generations: 2, tasks_per_step: 1,
     max_tokens: 32}
"""


@pytest.mark.slow
def test_study_runs_and_resumes(tmp_path):
    cfg_file = tmp_path / "exp.yaml"
    cfg_file.write_text(SMOKE)
    cfg = load_config(ExperimentConfig, cfg_file)
    out = tmp_path / "run"
    logs: list[str] = []

    class Killed(Exception):
        pass

    def killed_at_the_arm(line: str) -> None:
        logs.append(line)
        if line == "stage sft rand ...":
            raise Killed  # the session ends while the second model trains

    with pytest.raises(Killed):
        run_experiment(cfg, out, log=killed_at_the_arm)
    # what it had measured is in a partial report.json, and the page says it is partial
    partial = json.loads((out / "report.json").read_text())
    assert partial["partial"] == {"after": "base+rl", "models": ["base", "base+rl"]}
    assert [(c["model"], c["against"]) for c in partial["comparisons"]] == [("base+rl", "base")]
    from searchprime.report.load import load_run

    assert any(n.startswith("Partial: ") for n in load_run(out, trajectories=False).notes)
    # --status reads where it stands from the folder alone
    from searchprime.experiment.status import study_status

    status = study_status(cfg, out)
    by_name = {m.name: m for m in status.models}
    assert by_name["base"].done and by_name["base+rl"].done
    assert by_name["base"].samples == (6, 6) and by_name["base"].entropy == (4, 4)
    assert by_name["rand"].training == "not started" and by_name["rand"].rollouts == (0, 4)
    assert not by_name["rand"].done
    # the stage started and its process ended with no word: a killed run (here the process
    # lives on, so its pid reads as running)
    assert status.last_event["stage"] == "sft rand" and status.last_event["event"] == "start"
    assert status.running and status.work_hours > 0
    report = run_experiment(cfg, out, log=logs.append)
    assert "partial" not in json.loads((out / "report.json").read_text())
    # a finished run's checkpoints only served to resume it: removed, the final model kept
    for run in ("sft base", "rl base", "sft rand"):
        assert any(
            line.startswith(f"  {run}: finished; removed its checkpoints (") for line in logs
        )
    assert not list(out.glob("*/*/checkpoint-*"))
    assert (out / "sft" / "rand" / "model.safetensors").exists()
    from typer.testing import CliRunner

    from searchprime.cli.main import app

    shown = CliRunner().invoke(app, ["experiment", str(cfg_file), "--out", str(out), "--status"])
    assert shown.exit_code == 0, shown.output
    rows = [line.split() for line in shown.output.splitlines()]
    done = {r[0] for r in rows if r and r[-1] == "✓"}
    assert done == {"base", "base+rl", "rand"}
    assert "not running" in shown.output

    assert set(report["arms"]) == {"base", "base+rl", "rand", "teacher-plain", "teacher-all"}
    for name in ("base", "rand"):
        trajs = list(read_jsonl(out / "eval" / f"{name}.labelled.jsonl", Trajectory))
        assert len(trajs) == 4  # every dev task has a trajectory, scored and labelled
        assert all(t.scores is not None and t.labels is not None for t in trajs)
        assert (out / "sft" / name / "config.json").exists()
    assert report["arms"]["teacher-plain"]["n"] == 40
    assert json.loads((out / "report.json").read_text())["arms"].keys() == report["arms"].keys()
    plots = {Path(p).name: Path(p) for p in report["plots"]}
    assert {"rates_by_run.png", "behavior_vs_accuracy.png"} <= set(plots)
    assert all(name.endswith(".png") and p.stat().st_size > 0 for name, p in plots.items())
    rows = report_rows(report)
    assert [r["model"] for r in rows][:3] == ["base", "base+rl", "rand"]
    # the base keeps pool A's hop mix, and is evaluated before the arm is trained
    strata = report["selection"]["base"]["strata"]
    assert sum(v["selected"] for v in strata.values()) == 6 and len(strata) >= 2
    stages = [line for line in logs if line.startswith("stage ") and line.endswith("...")]
    assert stages.index("stage eval base ...") < stages.index("stage sft rand ...")
    assert any(line.startswith("  base on 4 dev tasks: EM ") for line in logs)

    # RL from the base on 4 train tasks after both teacher pools, then evaluated like the others
    rl = report["arms"]["base+rl"]
    assert rl["n"] == 4 and rl["rl"]["steps"] == 2 and rl["rl"]["runtime_s"] > 0
    assert set(rl["rl"]) == {"steps", "reward_first", "reward_last", "zero_std_groups", "runtime_s"}
    assert (out / "rl" / "base" / "steps.jsonl").read_text().count("\n") == 2
    rl_ids = {t.id for t in read_jsonl(out / "rl" / "tasks.jsonl", Task)}
    teacher_ids = {
        t.task_id
        for f in (out / "teachers").glob("*.labelled.jsonl")
        for t in read_jsonl(f, Trajectory)
    }
    assert len(rl_ids) == 4 and not rl_ids & teacher_ids
    assert stages.index("stage eval base ...") < stages.index("stage rl base ...")
    assert stages.index("stage rl base ...") < stages.index("stage eval base+rl ...")
    assert stages.index("stage eval base+rl ...") < stages.index("stage sft rand ...")
    by_model = {r["model"]: r for r in rows}
    assert by_model["base"]["ΔEM"] == "-" and by_model["base+rl"]["ΔEM"][0] in "+-"
    # the untrained tiny model never answers: the report says so instead of showing it as fine
    assert "turn limit" in report["arms"]["base"]["degenerate"]
    assert "WARNING: base looks degenerate: " + report["arms"]["base"]["degenerate"] in logs
    assert "degenerate" not in report["arms"]["teacher-all"]

    # how far to trust each number: CIs, entropy, pass@k from 3 samples on 2 tasks, turn
    # budgets, and each model paired against the one it was trained from
    base = report["arms"]["base"]
    lo, hi = base["ci95"]["em"]
    assert lo <= base["em"] <= hi
    assert base["entropy"]["mean"] > 0 and base["entropy"]["tokens"] > 0
    assert set(base["entropy"]["by_turn"]) <= {"1", "2", "3"}
    journal = out / "eval" / "base.entropy.jsonl"  # one line per dev trajectory, to resume from
    assert sorted(json.loads(line)["task_id"] for line in journal.read_text().splitlines()) == (
        sorted(t.id for t in cfg_dev(out, 4))
    )
    assert set(base["pass_at_k"]) == {"1", "2", "3"} and set(base["maj_at_k"]) == {"1", "2", "3"}
    assert base["sampling"]["overall"]["tasks"] == 2 and base["sampling"]["n"] == 3
    samples = list(read_jsonl(out / "eval" / "base.samples.jsonl", Trajectory))
    assert sorted((t.task_id, t.attempt) for t in samples) == sorted(
        (t.id, a) for t in cfg_dev(out, 2) for a in range(3)
    )
    assert [p["budget"] for p in base["scaling"]] == [1, 2, 3]
    pairs = {(c["model"], c["against"]) for c in report["comparisons"]}
    assert pairs == {("base+rl", "base"), ("rand", "base")}
    for c in report["comparisons"]:
        assert c["n"] == 4 and c["ci95"][0] <= c["delta"] <= c["ci95"][1]

    # the stage ledger says where each stage ran
    ledger = {r["stage"]: r for r in report["stages"]}
    assert ledger["sft base"]["done"] and ledger["sft base"]["passes"] == 1
    assert ledger["sft rand"]["done"] and ledger["sft rand"]["passes"] == 2  # killed, then done
    assert ledger["world"]["passes"] == 1 and ledger["world"]["revisits"] == 1  # cached on resume
    assert ledger["rl base"]["seconds"] > 0 and len(ledger["rl base"]["hosts"]) == 1

    # a rerun finds every stage done and trains nothing
    logs.clear()
    again = run_experiment(cfg, out, log=logs.append)
    assert not any(line.startswith(("stage sft", "stage rl")) for line in logs)
    assert again["arms"]["base"] == report["arms"]["base"]
    # ... and the finished study's folder refuses other settings before touching anything
    from searchprime.errors import ResumeError

    with pytest.raises(ResumeError, match=r"other settings \(seed\)"):
        run_experiment(cfg.model_copy(update={"seed": 5}), out, log=logs.append)
    assert json.loads((out / "experiment.json").read_text())["seed"] == cfg.seed

    # a smaller dev_n reports on its own tasks from the rollouts already made; growing it back
    # rolls nothing out again
    raw = out / "eval" / "base.jsonl"
    lines = raw.read_text().count("\n")
    small = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"dev_n": 2})})
    small_base = run_experiment(small, out, log=logs.append)["arms"]["base"]
    assert small_base["n"] == 2
    # the entropy too is that of the two tasks' tokens, read from the journal
    assert 0 < small_base["entropy"]["tokens"] < base["entropy"]["tokens"]
    assert len(list(read_jsonl(out / "eval" / "base.labelled.jsonl", Trajectory))) == 2
    assert run_experiment(cfg, out, log=logs.append)["arms"]["base"] == report["arms"]["base"]
    assert raw.read_text().count("\n") == lines == 4

    # a folder from before the entropy journal keeps its whole-pass result
    journal.unlink()
    legacy = {"entropy": {"mean": 9.5, "tokens": 7, "by_turn": {"1": 9.5}}}
    (out / "eval" / "base.entropy.json").write_text(json.dumps(legacy))
    assert run_experiment(cfg, out, log=logs.append)["arms"]["base"]["entropy"] == legacy["entropy"]


def cfg_dev(out, n: int) -> list[Task]:
    """The first ``n`` dev tasks of the study's world."""
    from searchprime.world import load_world

    return load_world(out / "world").split("dev")[:n]


def test_resume_with_other_settings_is_refused(tmp_path):
    """The folder's experiment.json (as any study on it leaves it) against new settings:
    others are refused before any stage runs; the same ones, or another eval section, pass."""
    from searchprime.errors import ResumeError

    cfg = ExperimentConfig.model_validate(
        {"world": {"entities": 100, "tasks": 50}, "teachers": {"base_pool": 40, "prime_pool": 40}}
    )
    saved = tmp_path / "experiment.json"
    saved.write_text(cfg.model_dump_json(indent=2) + "\n")
    before = saved.read_text()
    pools = cfg.teachers.model_copy(update={"base_pool": 30})
    other = cfg.model_copy(update={"seed": 1, "teachers": pools})
    with pytest.raises(ResumeError, match=r"other settings \(seed, teachers\)"):
        run_experiment(other, tmp_path, log=lambda _m: None)
    assert saved.read_text() == before and not (tmp_path / "world").exists()
    # past the guard, the world stage runs and then the pools check refuses these settings
    new_eval = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"dev_n": 2})})
    for same in (cfg, new_eval):
        with pytest.raises(ConfigError, match="exceeds the"):
            run_experiment(same, tmp_path, log=lambda _m: None)
        assert (tmp_path / "world" / "world.json").exists()
    assert json.loads(saved.read_text())["eval"]["dev_n"] == 2


@pytest.mark.parametrize(
    ("field", "value", "evaluated", "refused"),
    [
        ("topk", 5, False, "other settings (eval.topk)"),  # the teachers and RL read it
        ("device", "cuda", False, "other settings (eval.device)"),  # SFT and RL train on it
        ("prompt", "compact", False, "other settings (eval.prompt)"),
        ("temperature", 0.7, True, "evaluated with other settings (eval.temperature)"),
        ("backend", "llamacpp", True, "evaluated with other settings (eval.backend)"),
        ("temperature", 0.7, False, None),  # nothing evaluated yet: free to change
        ("resamples", 500, True, None),  # only the summary: free at any time
        ("max_batch", 4, True, None),
    ],
)
def test_eval_fields_that_shape_a_stage_are_checked_on_resume(
    tmp_path, field, value, evaluated, refused
):

    cfg = ExperimentConfig.model_validate(
        {"world": {"entities": 100, "tasks": 50}, "teachers": {"base_pool": 40, "prime_pool": 40}}
    )
    (tmp_path / "experiment.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    if evaluated:
        (tmp_path / "eval").mkdir()
        (tmp_path / "eval" / "base.jsonl").write_text("")
    other = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={field: value})})
    message = _resume_guard(other, tmp_path, refused)
    if refused is not None and evaluated:
        assert f"remove {tmp_path / 'eval'}" in message


def _resume_guard(other: ExperimentConfig, out: Path, refused: str | None) -> str:
    """Run ``other`` on ``out``: refused with ``refused`` in the message before any stage ran,
    or (None) past the guard, where the tiny world's pools check is the next refusal."""
    from searchprime.errors import ResumeError

    if refused is None:
        with pytest.raises(ConfigError, match="exceeds the"):
            run_experiment(other, out, log=lambda _m: None)
        return ""
    with pytest.raises(ResumeError) as info:
        run_experiment(other, out, log=lambda _m: None)
    assert refused in str(info.value) and not (out / "world").exists()
    return str(info.value)


@pytest.mark.parametrize(
    ("update", "run_started", "refused"),
    [
        ({"only": ["base"]}, True, None),  # which models run, not how: free at any time
        ({"keep_checkpoints": True}, True, None),  # what stays on disk: free at any time
        ({"seed_exploration": True}, True, None),
        ({"rl": {"start_from": ["base"], "learning_rate": 1e-5}}, False, None),  # no RL run yet
        ({"rl": {"start_from": ["base"], "learning_rate": 1e-5}}, True, "other settings (rl)"),
        ({"rl": None}, True, "other settings (rl)"),
    ],
)
def test_rl_may_change_until_an_rl_run_starts(tmp_path, update, run_started, refused):
    """A long study settles its RL while the SFT runs; a started RL run pins the section."""
    base = {
        "world": {"entities": 100, "tasks": 50},
        "teachers": {"base_pool": 40, "prime_pool": 40},
        "rl": {"start_from": ["base"]},
    }
    cfg = ExperimentConfig.model_validate(base)
    (tmp_path / "experiment.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "tasks.jsonl").write_text("")  # the tasks file alone is no started run
    if run_started:
        (tmp_path / "rl" / "base+rl").mkdir()
    _resume_guard(ExperimentConfig.model_validate({**base, **update}), tmp_path, refused)


def test_rl_tasks_follow_a_changed_rl_tasks(tmp_path):
    from searchprime.experiment.rl_stage import rl_tasks

    train = [Task(id=f"t{i}", question=f"q{i}", answers=["a"]) for i in range(12)]
    cfg = ExperimentConfig.model_validate(
        {"teachers": {"base_pool": 4, "prime_pool": 4}, "rl": {"tasks": 3}}
    )
    path = rl_tasks(cfg, train, tmp_path)
    assert [t.id for t in read_jsonl(path, Task)] == ["t8", "t9", "t10"]
    more = cfg.model_copy(update={"rl": cfg.rl.model_copy(update={"tasks": 4})})
    assert [t.id for t in read_jsonl(rl_tasks(more, train, tmp_path), Task)][-1] == "t11"


def test_pools_larger_than_the_train_split_are_refused(tmp_path):
    cfg = ExperimentConfig.model_validate(
        {"world": {"entities": 100, "tasks": 50}, "teachers": {"base_pool": 40, "prime_pool": 40}}
    )
    with pytest.raises(ConfigError, match="exceeds the"):
        run_experiment(cfg, tmp_path, log=lambda _m: None)


def test_arm_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        ExperimentConfig.model_validate({"arms": [{"name": "a"}, {"name": "a"}]})


def test_quickstart_yaml_is_valid():
    from importlib import resources

    ref = resources.files("searchprime.experiment") / "quickstart.yaml"
    with resources.as_file(ref) as path:
        cfg = load_config(ExperimentConfig, path)
    assert cfg.sft.model == "smollm2" and cfg.arms[0].strategy == "behavior"
    assert cfg.rl is not None and [r.name for r in cfg.rl.plan()] == ["base+rl", "primed+rl"]
    assert cfg.rl.sampler == "hf"


def test_study_yaml_is_valid_and_llamacpp_on_cuda_is_refused():
    from tests.conftest import REPO

    study = REPO / "bench" / "study.yaml"
    cfg = load_config(ExperimentConfig, study)
    assert cfg.eval.backend == "llamacpp" and cfg.eval.dev_n == 300
    assert cfg.eval.samples == 4 and cfg.eval.samples_models == [
        "base",
        "behavior",
        "direct-rl",
        "behavior-rl",
    ]
    assert cfg.rl is not None and [r.name for r in cfg.rl.plan()][0] == "direct-rl"
    assert len(cfg.rl.plan()) == 7
    measured = load_config(ExperimentConfig, REPO / "bench" / "study_primed.yaml")
    assert [a.name for a in measured.arms] == ["primed"]
    assert measured.rl is not None and [r.name for r in measured.rl.plan()] == [
        "base+rl",
        "primed+rl",
    ]
    with pytest.raises(ConfigError, match="backend"):
        load_config(ExperimentConfig, study, {"eval.device": "cuda"})
    gpu = load_config(ExperimentConfig, study, {"eval.device": "cuda", "eval.backend": "hf"})
    assert gpu.eval.backend == "hf"


def test_the_gpu_study_is_the_papers_recipe(tmp_path):
    """bench/study_gpu.yaml: every RL run is G = 8 x 32 questions a step at lr 1e-6 and KL
    0.001, sampled by a vLLM server in TRL's server mode; three seeds of the headline pair."""
    from searchprime.experiment.rl_stage import rl_run_config
    from searchprime.rl.grpo import grpo_config
    from tests.conftest import REPO

    cfg = load_config(ExperimentConfig, REPO / "bench" / "study_gpu.yaml")
    assert cfg.seeds == [0, 1, 2] and cfg.seed_models == ["direct-rl", "behavior-rl"]
    assert (cfg.eval.device, cfg.eval.backend, cfg.eval.samples) == ("cuda", "hf", 8)
    train = cfg.world.tasks * 0.8  # the world's train split
    assert cfg.teachers.base_pool + cfg.teachers.prime_pool + cfg.rl.tasks <= train
    assert {a.n for a in cfg.arms} == {100} and len(cfg.rl.plan()) == 7
    for run in cfg.rl.plan():
        rc = rl_run_config(
            cfg,
            tmp_path / "m",
            tmp_path / run.folder,
            tasks=tmp_path / "t",
            index_dir=tmp_path / "i",
            run=run,
        )
        args = grpo_config(rc)
        assert rc.sampler.kind == "vllm" and args.use_vllm and args.vllm_mode == "server"
        assert args.num_generations == 8 and rc.episodes_per_step() == 32 * 8
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        assert per_step == 256 and args.learning_rate == 1e-6 and args.beta == 0.001
        assert args.vllm_server_base_url == "http://127.0.0.1:8010"
    from searchprime.experiment.sft_stage import sft_run_config
    from searchprime.train.sft import _sft_config

    dirs = {"behavior": tmp_path / "d", "base": tmp_path / "b"}
    sft = _sft_config(sft_run_config(cfg, "behavior", "m", dirs, tmp_path / "o"), True)
    assert sft.bf16 and sft.activation_checkpointing and sft.per_device_train_batch_size == 4
    # TRL's default vllm_mode (colocate) has no server for the agent loop to call
    with pytest.raises(ConfigError, match=r"rl.trl.vllm_mode 'colocate' has no server"):
        load_config(
            ExperimentConfig, REPO / "bench" / "study_gpu.yaml", {"rl.trl.vllm_mode": "colocate"}
        )


def test_a_second_study_on_the_same_folder_is_refused(tmp_path):
    from searchprime.records.lock import LockHeldError, OutputLock

    cfg = ExperimentConfig.model_validate({"world": {"entities": 100, "tasks": 50}})
    with OutputLock(tmp_path, purpose="searchprime experiment"):
        with pytest.raises(LockHeldError, match=r"pid \d+"):
            run_experiment(cfg, tmp_path, log=lambda _m: None)
    assert not (tmp_path / "experiment.json").exists()  # refused before writing anything
