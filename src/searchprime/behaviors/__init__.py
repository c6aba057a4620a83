"""Behavior analysis: taxonomies, discovery, annotation (LLM or sandbox rules), statistics.

The rules annotator (``searchprime.behaviors.rules``) belongs to the sandbox world and is
imported lazily by :class:`~searchprime.behaviors.annotate.RulesAnnotator`.
"""

from searchprime.behaviors.agreement import AgreementReport, agreement, agreement_file
from searchprime.behaviors.annotate import LLMAnnotator, RulesAnnotator, annotate_file
from searchprime.behaviors.discover import DiscoverConfig, discover, discover_files
from searchprime.behaviors.stats import StatsReport, compute_stats
from searchprime.behaviors.taxonomy import DEFAULT_TAXONOMY, BehaviorDef, Taxonomy, load_taxonomy

__all__ = [
    "DEFAULT_TAXONOMY",
    "AgreementReport",
    "BehaviorDef",
    "DiscoverConfig",
    "LLMAnnotator",
    "RulesAnnotator",
    "StatsReport",
    "Taxonomy",
    "agreement",
    "agreement_file",
    "annotate_file",
    "compute_stats",
    "discover",
    "discover_files",
    "load_taxonomy",
]
