"""The sandbox rules annotator (``rules:v1``): behavior labels from trajectory text alone.

It reads only what any policy leaves behind -- each turn's thinking, its action (queries,
answer) and the search results it saw -- plus the world's facts (entity names, near-
duplicates, page sources). It never reads ``Turn.policy_meta``, so it labels trajectories of
trained models as well as the teachers'. A behavior is present when a turn both *says* it
(a cue in the thinking) and *does* it (a structural check on actions and observations):

* information_verification -- a cue (confirm, corroborate, double-check, agree, majority,
  second source ...) in a turn whose thinking names an entity seen in the results;
* authority_evaluation -- a cue (reliable, trust, authoritative, credible) while the results
  seen so far hold pages of different authority tiers;
* adaptive_search -- a cue (another name, rephrase, too specific/narrow, broaden ...) on a
  turn that searches with a query unlike every earlier one;
* error_recovery -- a cue (wrong person/company/book, mistake, backtrack, go back, redo) on a
  search turn after earlier searches.

``behaviors_offered(task)`` says which behaviors a task's traps call for.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from searchprime.records import BEHAVIORS, BehaviorEvidence, BehaviorLabels, Trajectory, Turn
from searchprime.search.format import parse_hits
from searchprime.world.schema import AUTHORITY
from searchprime.world.traps import behaviors_offered

if TYPE_CHECKING:
    from searchprime.world.load import World

__all__ = ["ANNOTATOR", "annotate_rules", "behaviors_offered"]

ANNOTATOR = "rules:v1"

_CUES: dict[str, re.Pattern[str]] = {
    "information_verification": re.compile(
        r"\b(confirm\w*|corroborat\w*|double-check\w*|cross-check\w*|verif\w*|agrees?|"
        r"majority|second source|another source|both say|both give)\b",
        re.IGNORECASE,
    ),
    "authority_evaluation": re.compile(
        r"\b(reliab\w*|trust\w*|authoritative|authority|credib\w*|reputable)\b", re.IGNORECASE
    ),
    "adaptive_search": re.compile(
        r"(another name|also known as|rephras\w*|too (specific|narrow)|broad(en\w*|ly|er)|"
        r"different wording|under that name|off-target|drop the extra)",
        re.IGNORECASE,
    ),
    "error_recovery": re.compile(
        r"(\bwrong (person|company|book|city|one|entity|page|path)|\bmistake|backtrack\w*|"
        r"\bgo(ing)? back\b|\bredo\b|different (person|company|book|city) from)",
        re.IGNORECASE,
    ),
}
_SOURCE = re.compile(r"\b(encyclopedia|official|news|forum|blog)\b", re.IGNORECASE)
_WORD = re.compile(r"\w+")


def _think(turn: Turn) -> str:
    if turn.action.think:
        return turn.action.think
    if turn.reasoning:
        return turn.reasoning
    # fall back to the text before the action tag
    cut = min((i for i in (turn.output.find("<search>"), turn.output.find("<answer>")) if i >= 0),
              default=len(turn.output))  # fmt: skip
    return turn.output[:cut]


def _hits(turn: Turn):
    if turn.hits:
        return turn.hits
    if turn.observation:
        return parse_hits(turn.observation)
    return []


def _qwords(query: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORD.findall(query))


def annotate_rules(traj: Trajectory, world: World | None = None) -> BehaviorLabels:
    """Label ``traj`` with the four behaviors (deterministic; see the module docstring)."""
    found: dict[str, list[int]] = {b: [] for b in BEHAVIORS}
    why: dict[str, list[str]] = {b: [] for b in BEHAVIORS}
    seen_text = ""  # observation text so far (before the current turn's own search)
    tiers: set[int] = set()
    queries: list[frozenset[str]] = []
    n_search = 0
    twins_mentioned: set[str] = set()
    for turn in traj.turns:
        think = _think(turn) or ""
        action = turn.action
        is_search = action.kind == "search"
        new_query = is_search and _qwords(action.content) not in queries

        def hit(name: str, think: str = think) -> bool:
            return bool(_CUES[name].search(think))

        if hit("information_verification") and _names_seen(think, seen_text, world):
            found["information_verification"].append(turn.index)
            why["information_verification"].append(f"turn {turn.index}: checks a fact")
        if hit("authority_evaluation") and (len(tiers) > 1 or len(set(_SOURCE.findall(think))) > 1):
            found["authority_evaluation"].append(turn.index)
            why["authority_evaluation"].append(f"turn {turn.index}: weighs sources")
        if hit("adaptive_search") and new_query and n_search > 0:
            found["adaptive_search"].append(turn.index)
            why["adaptive_search"].append(f"turn {turn.index}: reformulates the query")
        if hit("error_recovery") and is_search and n_search > 0:
            found["error_recovery"].append(turn.index)
            note = f"turn {turn.index}: abandons an earlier step"
            if twins_mentioned:
                note += f" (near-duplicate {sorted(twins_mentioned)[0]!r} seen before)"
            why["error_recovery"].append(note)

        if is_search:
            n_search += 1
            queries.append(_qwords(action.content))
        for h in _hits(turn):
            seen_text += f"\n{h.title}\n{h.text}"
            if h.source in AUTHORITY:
                tiers.add(AUTHORITY[h.source])
        if world is not None and is_search:
            ent = world.entity_by_name(action.content)
            if ent is not None and ent.twin_of:
                twins_mentioned.add(ent.name)
    behaviors = {
        b: BehaviorEvidence(
            present=bool(found[b]),
            turns=found[b],
            rationale="; ".join(why[b][:3]) if found[b] else "no turn both says and does it",
        )
        for b in BEHAVIORS
    }
    return BehaviorLabels(annotator=ANNOTATOR, behaviors=behaviors)


def _names_seen(think: str, seen: str, world: World | None) -> bool:
    """True when there is retrieved evidence to check against and the thinking does not name
    an entity the results never showed (a check must be about something retrieved)."""
    if not seen:
        return False
    words = [w for w in _WORD.findall(think) if w[:1].isupper() and len(w) > 3]
    if world is not None:
        words = [w for w in words if world.entity_by_name(w) is not None]
    low = seen.lower()
    return all(w.lower() in low for w in words)
