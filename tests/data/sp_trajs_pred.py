"""A custom predicate for the ``py:`` strategy test."""


def even_task(traj) -> bool:
    return int(traj.task_id[1:]) % 2 == 0
