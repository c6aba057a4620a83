"""The text of the bundle's ``reward.py`` and ``run_grpo.sh`` (filled by :mod:`.bundle`)."""

from __future__ import annotations

REWARD_PY = '''\
"""Reward of this verl bundle, written by `searchprime train rl --export-verl`.

verl loads it by path (reward.custom_reward_function.path=<this file>, name=compute_score).
Every data source is scored the same way, with `searchprime score`'s EM / F1 / cover-EM and the
agent loop's answer-tag protocol; it imports searchprime, which verl's workers have anyway for
the agent loop. METRIC is the reward; reward.custom_reward_function.reward_kwargs.metric
overrides it.
"""

from searchprime.rl.verl.reward import compute_score as _compute_score

METRIC = {metric!r}


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's custom reward: a dict whose "score" is METRIC (em, f1, cover_em all logged)."""
    kwargs.setdefault("metric", METRIC)
    return _compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
'''

RUN_GRPO_SH = """\
#!/usr/bin/env bash
# GRPO with verl over searchprime's agent loop: the paper's recipe (RL.md). Written by
# `searchprime train rl --export-verl`. Usage: MODEL=/path/to/policy bash run_grpo.sh [overrides]
# Extra arguments are Hydra overrides passed to verl (e.g. trainer.nnodes=2).
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
MODEL="${{MODEL:-{model}}}"
N_GPUS="${{N_GPUS:-{n_gpus}}}"
NNODES="${{NNODES:-1}}"
ROLLOUT="${{ROLLOUT:-vllm}}"
PYTHON="${{PYTHON:-python3}}"
if [ -z "$MODEL" ]; then echo "error: set MODEL to the policy's HF folder" >&2; exit 2; fi

# The search server of search_server.yaml: started here unless one already answers.
eval "$("$PYTHON" -c '
import shlex, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for k in ("index", "host", "port", "workers", "url"):
    print("SEARCH_" + k.upper() + "=" + shlex.quote(str(c.get(k) or "")))
' "$HERE/search_server.yaml")"
HEALTH="${{SEARCH_URL%/retrieve}}/health"
if ! curl -sf "$HEALTH" >/dev/null; then
  if [ -z "$SEARCH_INDEX" ]; then
    echo "error: no search server at $SEARCH_URL and no index to serve" >&2; exit 2
  fi
  searchprime index serve "$SEARCH_INDEX" --host "$SEARCH_HOST" --port "$SEARCH_PORT" \\
    --workers "$SEARCH_WORKERS" &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do curl -sf "$HEALTH" >/dev/null && break; sleep 1; done
  curl -sf "$HEALTH" >/dev/null || {{ echo "error: search server did not start" >&2; exit 2; }}
fi

"$PYTHON" -m verl.trainer.main_ppo \\
  algorithm.adv_estimator=grpo \\
  algorithm.use_kl_in_reward=false \\
  data.train_files="$HERE/train.parquet" \\
  data.val_files="$HERE/val.parquet" \\
  data.train_batch_size={batch_size} \\
  data.max_prompt_length={max_prompt_length} \\
  data.max_response_length={max_response_length} \\
  data.filter_overlong_prompts=true \\
  data.truncation=error \\
  data.return_raw_chat=true \\
  actor_rollout_ref.model.path="$MODEL" \\
  actor_rollout_ref.model.use_remove_padding=true \\
  actor_rollout_ref.actor.optim.lr=1e-6 \\
  actor_rollout_ref.actor.ppo_mini_batch_size={batch_size} \\
  actor_rollout_ref.actor.use_dynamic_bsz=true \\
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu={max_tokens_per_gpu} \\
  actor_rollout_ref.actor.use_kl_loss=true \\
  actor_rollout_ref.actor.kl_loss_coef=0.001 \\
  actor_rollout_ref.actor.kl_loss_type=low_var_kl \\
  actor_rollout_ref.actor.clip_ratio=0.2 \\
  actor_rollout_ref.actor.entropy_coeff=0.001 \\
  actor_rollout_ref.actor.loss_agg_mode=token-mean \\
  actor_rollout_ref.rollout.name="$ROLLOUT" \\
  actor_rollout_ref.rollout.mode=async \\
  actor_rollout_ref.rollout.n={group_size} \\
  actor_rollout_ref.rollout.temperature=1.0 \\
  actor_rollout_ref.rollout.top_p=1.0 \\
  actor_rollout_ref.rollout.top_k=-1 \\
  actor_rollout_ref.rollout.val_kwargs.temperature=0.4 \\
  actor_rollout_ref.rollout.val_kwargs.do_sample=true \\
  actor_rollout_ref.rollout.calculate_log_probs=true \\
  actor_rollout_ref.rollout.gpu_memory_utilization=0.7 \\
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \\
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$HERE/agent_loop.yaml" \\
  actor_rollout_ref.rollout.agent.default_agent_loop={agent_name} \\
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4 \\
  reward.custom_reward_function.path="$HERE/reward.py" \\
  reward.custom_reward_function.name=compute_score \\
  trainer.critic_warmup=0 \\
  trainer.logger='["console"]' \\
  trainer.project_name=searchprime \\
  trainer.experiment_name=verl_grpo \\
  trainer.n_gpus_per_node="$N_GPUS" \\
  trainer.nnodes="$NNODES" \\
  trainer.total_epochs=1 \\
  trainer.save_freq=15 \\
  trainer.test_freq=8 \\
  trainer.val_before_train=true \\
  "$@"
"""
