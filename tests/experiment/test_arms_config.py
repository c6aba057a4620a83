"""The paper's arms in the experiment file: named RL runs, prompt arms, the run each maps to,
the claims they make testable, and seeds for the headline pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchprime.agent.prompts import HANDBOOK, system_prompt
from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.experiment import ExperimentConfig
from searchprime.experiment.claims import claim_pairs, ratio_ci
from searchprime.experiment.policy import eval_agent_config
from searchprime.experiment.rl_stage import rl_run_config

ARMS = """
arms:
  - {name: random, strategy: random, n: 8}
  - {name: correct, strategy: correct, n: 8}
  - {name: behavior, strategy: behavior, n: 8}
  - {name: behavior-incorrect, strategy: behavior-incorrect, n: 8}
prompt_arms:
  - {name: handbook, model: base, prompt: handbook}
eval: {prompt: compact}
rl:
  rewards: {em: 1.0}
  runs:
    - {name: direct-rl, start_from: base}
    - {name: random-rl, start_from: random}
    - {name: correct-rl, start_from: correct}
    - {name: behavior-rl, start_from: behavior}
    - {name: behavior-incorrect-rl, start_from: behavior-incorrect}
    - {name: prompted-rl, start_from: base, prompt: handbook}
    - {name: bonus-rl, start_from: base, rewards: {em: 1.0, behavior: 0.1}, annotator: grounded}
"""


def _load(tmp_path: Path, text: str) -> ExperimentConfig:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return load_config(ExperimentConfig, path)


def _run(cfg: ExperimentConfig, name: str, tmp_path: Path):
    run = next(r for r in cfg.rl.plan() if r.name == name)
    return rl_run_config(
        cfg, tmp_path / "sft", tmp_path / "rl" / run.folder, tasks=tmp_path, index_dir=tmp_path,
        run=run,
    )  # fmt: skip


def test_the_arms_parse_into_models_runs_and_claims(tmp_path):
    cfg = _load(tmp_path, ARMS)
    models = cfg.models()
    assert models["behavior-rl"] == "behavior" and models["handbook"] == "base"
    assert models["prompted-rl"] == models["bonus-rl"] == models["direct-rl"] == "base"
    assert [r.folder for r in cfg.rl.plan()][:2] == ["direct-rl", "random-rl"]
    pairs = {key: (m, a) for key, m, a in claim_pairs(cfg)}
    assert pairs == {
        "priming_vs_direct": ("behavior-rl", "direct-rl"),
        "priming_vs_correct": ("behavior-rl", "correct-rl"),
        "priming_vs_random": ("behavior-rl", "random-rl"),
        "incorrect_vs_priming": ("behavior-incorrect-rl", "behavior-rl"),
        "priming_vs_prompted": ("behavior-rl", "prompted-rl"),
        "priming_vs_bonus": ("behavior-rl", "bonus-rl"),
    }
    # the arms are found by what they are: renaming a run keeps its claim
    renamed = ARMS.replace("name: behavior-rl,", "name: bp,")
    assert ("priming_vs_direct", "bp", "direct-rl") in claim_pairs(_load(tmp_path, renamed))


def test_bonus_rl_adds_a_small_behavior_reward_and_prompted_rl_prompts_only_during_rl(tmp_path):
    cfg = _load(tmp_path, ARMS)
    bonus = _run(cfg, "bonus-rl", tmp_path)
    assert bonus.rewards == {"em": 1.0, "behavior": 0.1}
    assert _run(cfg, "direct-rl", tmp_path).rewards == {"em": 1.0}
    prompted = _run(cfg, "prompted-rl", tmp_path)
    assert prompted.episode.prompt == "compact+handbook"
    assert _run(cfg, "behavior-rl", tmp_path).episode.prompt == "compact"
    assert prompted.output_dir == str(tmp_path / "rl" / "prompted-rl")
    # the handbook is the study's prompt followed by the four behaviors
    text = system_prompt("explicit", "compact+handbook")
    assert text.startswith(system_prompt("explicit", "compact")) and text.endswith(HANDBOOK)
    assert "trust the encyclopedia" in HANDBOOK
    assert eval_agent_config(cfg, "handbook").prompt == "compact+handbook"
    assert eval_agent_config(cfg).prompt == "compact"


def test_the_shorthand_and_the_existing_files_keep_their_meaning(tmp_path):
    from importlib import resources

    from tests.conftest import REPO

    cfg = _load(tmp_path, "arms: [{name: primed}]\nrl: {start_from: [base, primed]}\n")
    assert [(r.name, r.start_from, r.folder) for r in cfg.rl.plan()] == [
        ("base+rl", "base", "base"),
        ("primed+rl", "primed", "primed"),
    ]
    assert [r.name for r in _load(tmp_path, "rl: {}\n").rl.plan()] == ["base+rl"]
    ref = resources.files("searchprime.experiment") / "quickstart.yaml"
    with resources.as_file(ref) as path:
        quick = load_config(ExperimentConfig, path)
    assert [r.name for r in quick.rl.plan()] == ["base+rl", "primed+rl"]
    study = load_config(ExperimentConfig, REPO / "bench" / "study.yaml")
    assert {a.n for a in study.arms} == {60} and len(study.arms) == 4
    assert len(claim_pairs(study)) == 6 and study.prompt_arms[0].prompt == "handbook"
    bonus = next(r for r in study.rl.plan() if r.name == "bonus-rl")
    assert bonus.rewards == {"em": 1.0, "answered": 0.2, "behavior": 0.1}
    assert study.rl.rewards == {"em": 1.0, "answered": 0.2} and study.rl.prefilter is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rl: {start_from: [base], runs: [{name: a}]}", r"rl.start_from .* or rl.runs, not both"),
        ("rl: {runs: [{name: a, start_from: primd}]}", r"rl.runs.0: 'primd' is no model"),
        ("rl: {runs: [{name: a}, {name: a}]}", r"names must differ .*: a"),
        ("rl: {runs: [{name: primed}]}", r"names must differ .*: primed"),
        ("rl: {runs: [{name: a, prompt: handbok}]}", r"'handbok' is no prompt; choose from"),
        ("rl: {runs: [{name: a, rewards: {bonus: 1}}]}", r"unknown reward 'bonus'"),
        ("rl: {runs: [{name: a, rewards: {judge: 1}}]}", r"'judge' needs a judge model"),
        ("rl: {runs: [{name: a, annotator: llm}]}", r"rl.runs.0.annotator"),
        ("rl: {runs: [{name: primed+rl}, {name: primed, start_from: primed}]}", r"names must"),
        ("prompt_arms: [{name: h, model: nobody}]", r"prompt_arms.0.model: 'nobody' is no"),
        ("prompt_arms: [{name: h, prompt: tiny}]", r"'tiny' is no prompt"),
        ("prompt_arms: [{name: base}]", r"names must differ .*: base"),
        ("only: [behavior-rl]", r"only: 'behavior-rl': no model"),
        ("seeds: [0, 1]\nseed_models: [nobody]", r"seed_models: 'nobody'"),
        ("eval: {samples: 2, samples_models: [bse]}", r"eval.samples_models: 'bse': no model"),
    ],
)
def test_bad_arms_are_refused_when_the_yaml_loads(tmp_path, text, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        _load(tmp_path, "arms: [{name: primed}]\n" + text + "\n")
    assert "exp.yaml" in str(err.value)


def test_only_keeps_what_the_named_models_start_from(tmp_path):
    cfg = _load(tmp_path, ARMS + "only: [behavior-rl, handbook]\n")
    assert cfg.wanted() == {"base", "behavior", "behavior-rl", "handbook"}
    assert _load(tmp_path, ARMS).wanted() == set(cfg.models())


def test_seed_models_limit_later_seeds_to_the_headline_pair(tmp_path):
    from searchprime.experiment.seeds import run_seeds

    cfg = _load(tmp_path, ARMS + "seeds: [0, 1, 2]\nseed_models: [direct-rl, behavior-rl]\n")
    ran: dict[int, set[str]] = {}

    def one(c: ExperimentConfig, out: Path) -> dict:
        ran[c.seed] = c.wanted()
        arms = {m: {"em": 0.5, "f1": 0.5, "turns": 2, "searches": 1} for m in ran[c.seed]}
        for row in arms.values():
            row["behavior"] = dict.fromkeys(
                ["information_verification", "authority_evaluation", "adaptive_search"]
                + ["error_recovery"],
                0.0,
            )
        claim = {"claim": "priming_vs_direct", "statement": "s", "model": "behavior-rl"}
        claim |= {"against": "direct-rl", "delta": 0.1 * c.seed, "ratio": 1.0 + c.seed}
        return {"arms": arms, "claims": [{**claim, "verdict": "not confirmed"}]}

    report = run_seeds(cfg, tmp_path, one, log=lambda _m: None)
    assert ran[0] == set(cfg.models())
    assert ran[1] == ran[2] == {"base", "behavior", "direct-rl", "behavior-rl"}
    assert set(report["arms"]) == ran[1]  # the headline pair over three seeds
    (claim,) = report["claims"]
    assert claim["ratio"]["per_seed"] == [1.0, 2.0, 3.0] and claim["ratio"]["mean"] == 2.0


def test_ratio_ci_brackets_the_ratio_of_paired_means():
    before = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # 0.4
    after = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]  # 0.6
    ratio, (lo, hi) = ratio_ci(before, after, resamples=2000, seed=0)
    assert ratio == pytest.approx(1.5) and lo <= 1.5 <= hi and lo >= 1.0  # never worse per task
    assert ratio_ci([0.0, 0.0], [1.0, 0.0], resamples=100, seed=0) == (None, [None, None])


def test_claims_are_measured_with_verdicts(tmp_path):
    from searchprime.experiment.claims import claims

    cfg = _load(tmp_path, ARMS)
    base = [1.0] * 10 + [0.0] * 30  # 0.25
    better = [1.0] * 30 + [0.0] * 10  # 0.75, never worse per task
    per_task = {
        "direct-rl": base,
        "behavior-rl": better,
        "correct-rl": better,  # a tie: not confirmed
        "random-rl": [1.0] * 40,  # behavior->RL worse on every task it lost: reversed
        "behavior-incorrect-rl": better,  # the same: confirmed
    }
    arms = {"behavior-rl": {"em": 0.75, "pass_at_k": {"1": {"mean": 0.7}, "4": {"mean": 0.9}}}}
    got = {c["claim"]: c for c in claims(cfg, per_task, arms)}
    assert set(got) == {
        "priming_vs_direct",
        "priming_vs_correct",
        "priming_vs_random",
        "incorrect_vs_priming",
    }  # prompted-rl and bonus-rl were not evaluated: their claims are left out
    head = got["priming_vs_direct"]
    assert head["verdict"] == "confirmed" and head["ratio"] == pytest.approx(3.0)
    assert head["ratio_ci95"][0] > 1.0 and head["delta"] == pytest.approx(0.5)
    assert head["gained"] == 20 and head["mcnemar_p"] < 0.001
    assert head["exploration"]["behavior-rl"]["pass@4"] == 0.9
    assert got["priming_vs_correct"]["verdict"] == "not confirmed"
    assert got["priming_vs_random"]["verdict"] == "reversed"
    assert got["incorrect_vs_priming"]["verdict"] == "confirmed"
