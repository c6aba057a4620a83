"""verl, the paper's distributed RL engine, as the cluster path for RL.

``searchprime train rl --export-verl OUT`` writes a bundle (:func:`export_bundle`): verl
``RLHFDataset`` parquet files, a reward for every data source (:func:`compute_score`), the
registration of our agent loop as a verl ``AgentLoopBase``
(:mod:`searchprime.rl.verl.agent_loop`, which imports verl and so is not imported here) and a
``run_grpo.sh`` with the paper's GRPO settings. See ``docs/rl/verl.md``.
"""

from searchprime.rl.verl.bundle import BUNDLE_FILES, export_bundle
from searchprime.rl.verl.config import LAYOUTS, METRICS, VerlExportConfig, VerlSettings
from searchprime.rl.verl.reward import compute_score, final_answer, golds_of
from searchprime.rl.verl.rows import AGENT_NAME, task_rows

__all__ = [
    "AGENT_NAME",
    "BUNDLE_FILES",
    "LAYOUTS",
    "METRICS",
    "VerlExportConfig",
    "VerlSettings",
    "compute_score",
    "export_bundle",
    "final_answer",
    "golds_of",
    "task_rows",
]
