"""Traps: what each one does to a task, and which behavior it calls for."""

from __future__ import annotations

from searchprime.records import Task

__all__ = ["TRAP_BEHAVIORS", "behaviors_offered"]

#: Trap -> the behaviors it calls for.
#:
#: * ``conflict`` -- a forum/blog page states a wrong value in the words queries use, so it
#:   outranks the right page: weighing authority or confirming with a second source fixes it.
#: * ``alias`` -- the question names the entity by an alias only one page ties to the real
#:   name: the obvious query misses and must be reformulated.
#: * ``overspecific`` -- the question adds a descriptor that theme pages about *other*
#:   entities share: the full-question query returns off-target pages and must be broadened.
#: * ``distractor`` -- a near-duplicate entity outranks the intermediate entity: an agent that
#:   follows it must notice and go back.
TRAP_BEHAVIORS: dict[str, tuple[str, ...]] = {
    "conflict": ("authority_evaluation", "information_verification"),
    "alias": ("adaptive_search",),
    "overspecific": ("adaptive_search",),
    "distractor": ("error_recovery",),
}


def behaviors_offered(task: Task) -> set[str]:
    """Behaviors a task's situations call for (verification is offered by every task)."""
    offered = {"information_verification"}
    for trap in task.meta.get("traps", []):
        offered.update(TRAP_BEHAVIORS.get(trap, ()))
    return offered
