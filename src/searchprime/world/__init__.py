"""The sandbox world: a generated corpus and multi-hop tasks where the four behaviors pay
off, scripted teachers that stand in for a strong LLM, and their calibration."""

from searchprime.world.build import WORLD_VERSION, WorldConfig, build_world
from searchprime.world.load import Page, World, load_world
from searchprime.world.schema import AUTHORITY, RELATIONS, TRAPS
from searchprime.world.teachers import TEACHER_PRESETS, Teacher, TeacherConfig, teacher_config
from searchprime.world.traps import TRAP_BEHAVIORS, behaviors_offered

__all__ = [
    "AUTHORITY",
    "RELATIONS",
    "TEACHER_PRESETS",
    "TRAPS",
    "TRAP_BEHAVIORS",
    "WORLD_VERSION",
    "Page",
    "Teacher",
    "TeacherConfig",
    "World",
    "WorldConfig",
    "behaviors_offered",
    "build_world",
    "load_world",
    "teacher_config",
]
