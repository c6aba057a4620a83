#!/bin/sh
# The paper's table (bench/study.yaml) on a 2-core CPU, one session at a time.
#
# Each session runs this script; it restores the committed results in
# bench/results/study_cpu_carry into runs/paper (the VM may not come back between sessions:
# weights never travel, only rollouts, labels, entropy journals, samples, step logs and the
# ledger) and goes on where the study stopped. Finished steps cost seconds (world, teachers,
# nothing trained); a step needs the base SFT again on a fresh machine (~15 min). Commit
# bench/results/study_cpu_carry before the session ends.
#
# Ordered so that every step is one model chain that fits a session on an idle VM (base SFT
# ~15 min, an arm's SFT ~20 min, its dev eval 30-60 min, RL from base ~25 min, from a primed
# arm ~1.5-2 h): the arms from base first, then the headline pair, then the primed arms; pass@k
# (eval.samples) last for the four models that carry the exploration claim; then the seeds.
#
#   nohup setsid sh bench/paper_study.sh >> runs/paper.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
S=".venv/bin/searchprime experiment ${STUDY:-bench/study.yaml} --out runs/paper --carry bench/results/study_cpu_carry"
for only in \
    handbook,prompted-rl,bonus-rl \
    direct-rl \
    behavior-rl \
    correct-rl \
    random-rl \
    behavior-incorrect-rl; do
    nice -n 10 $S --only "$only" --samples 1
done
nice -n 10 $S --only base,behavior,direct-rl,behavior-rl
nice -n 10 $S
