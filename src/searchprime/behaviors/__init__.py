"""Behavior analysis: taxonomies, discovery, annotation (LLM or sandbox rules), statistics.

The sandbox annotators belong to the sandbox world: the phrase-keyed rules
(``searchprime.behaviors.rules``, imported lazily by
:class:`~searchprime.behaviors.annotate.RulesAnnotator`) and the action-grounded
:class:`~searchprime.behaviors.grounded.GroundedAnnotator`.
"""

from searchprime.behaviors.agreement import (
    AgreementReport,
    PairReport,
    agreement,
    agreement_file,
    annotator_agreement,
    cohen_kappa,
)
from searchprime.behaviors.annotate import LLMAnnotator, RulesAnnotator, annotate_file
from searchprime.behaviors.discover import DiscoverConfig, discover, discover_files
from searchprime.behaviors.grounded import GroundedAnnotator
from searchprime.behaviors.stats import StatsReport, compute_stats
from searchprime.behaviors.taxonomy import DEFAULT_TAXONOMY, BehaviorDef, Taxonomy, load_taxonomy

__all__ = [
    "DEFAULT_TAXONOMY",
    "AgreementReport",
    "BehaviorDef",
    "DiscoverConfig",
    "GroundedAnnotator",
    "LLMAnnotator",
    "PairReport",
    "RulesAnnotator",
    "StatsReport",
    "Taxonomy",
    "agreement",
    "agreement_file",
    "annotate_file",
    "annotator_agreement",
    "cohen_kappa",
    "compute_stats",
    "discover",
    "discover_files",
    "load_taxonomy",
]
