#!/bin/sh
# The paper's table (bench/study.yaml) on a 2-core CPU, one session at a time.
#
# Each session runs this script; it restores the committed results in
# bench/results/study_cpu_carry into runs/paper (the VM may not come back between sessions:
# weights never travel, only rollouts, labels, entropy journals, samples, step logs and the
# ledger) and goes on where the study stopped. Commit bench/results/study_cpu_carry and
# bench/results/study_cpu_steps.txt before the session ends.
#
# A step is one `--only` chain with its cost in minutes on an idle 2-core VM that starts with
# no weights (base SFT ~25, an arm's SFT ~33, a dev eval 15-70, entropy 2-20, RL from base
# ~20, from a primed arm ~90, pass@4 on 60 tasks 15-50). Weights do not outlive a session, so
# a step that is cut off costs its training again (its unfinished files go on only when that
# training makes the same weights, README "--carry"): with DEADLINE set (when
# the session's machine goes away: epoch seconds or anything `date -d` reads), a step that
# would not end before it is left for the next session and a later, shorter one runs instead.
# A finished step is written to study_cpu_steps.txt and skipped from then on.
#
#   DEADLINE="$(date -d '+175 min')" nohup setsid sh bench/paper_study.sh >> runs/paper.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
S_FILE="${STUDY:-bench/study.yaml}"
S=".venv/bin/searchprime experiment $S_FILE --out runs/paper --carry bench/results/study_cpu_carry"
done_file=bench/results/study_cpu_steps.txt
end=""
skipped=""
[ -n "${DEADLINE:-}" ] && end=$(date -d "@${DEADLINE}" +%s 2>/dev/null || date -d "$DEADLINE" +%s)
# The study's SFT runs under bf16 autocast (sft.trl.bf16). On a VM kind without native bf16
# (AVX2 only, e.g. the AMD EPYC VMs) its products run on fp32 kernels (train/cpu_bf16.py: ~fp32's
# speed; torch's own emulation took 402 s an SFT step there): the same recipe, other bits than
# an AMX VM's, as the weight stamps and the stages log's `cpu` field tell.

step() {  # minutes, then the experiment's arguments
    minutes=$1
    shift
    if [ -f "$done_file" ] && grep -qxF -- "$*" "$done_file"; then
        return 0
    fi
    if [ -n "$end" ]; then
        left=$(( (end - $(date +%s)) / 60 ))
        if [ "$minutes" -gt "$left" ]; then
            echo "paper_study: left for the next session: $* (~$minutes min; $left min left)"
            skipped=1
            return 0
        fi
    fi
    echo "paper_study: $(date -u +%FT%TZ) step: $* (~$minutes min)"
    nice -n 10 $S "$@"
    echo "$*" >> "$done_file"
}

# Costs on the slower Intel VM kind when idle (session 13: sft base 28 min, sft behavior 38;
# run 1: eval behavior 70 + entropy 20, RL behavior-rl ~90 in steps of ~11 min, its eval 24).
# An arm's SFT model and its RL run are two steps (their sum does not fit a session); a primed
# RL step (parent chain ~1 h, RL ~1.5 h, eval and entropy ~0.5 h: ~3 h 10 min) overruns a
# 3-h session on that kind and fits on a faster one (run 2's VM trained 1.7-2.3x faster). pass@4 (eval.samples, first 60 dev tasks) on base,
# behavior, direct-rl and behavior-rl comes last, each model trained once more for it (the
# weight stamps tell whether that made the same bits as the training its greedy eval came from).
step 60 --only handbook,prompted-rl,bonus-rl --samples 1
step 45 --only direct-rl --samples 1
step 150 --only behavior --samples 1
step 170 --only behavior-rl --samples 1
step 130 --only correct --samples 1
step 130 --only random --samples 1
step 150 --only behavior-incorrect --samples 1
step 170 --only correct-rl --samples 1
step 170 --only random-rl --samples 1
step 170 --only behavior-incorrect-rl --samples 1
step 40 --only base --samples-models base
step 70 --only direct-rl --samples-models direct-rl
step 110 --only behavior --samples-models behavior
step 170 --only behavior-rl --samples-models behavior-rl
# the whole table (report.json / report.html with every arm and the claims) once every step is done
if [ -z "$skipped" ]; then step 30; fi
