"""Tasks (reach, touch, push and the handsup twisters): goal sampling, reward terms, success, distance.

`TASKS` maps a task name to its class; each class's fields are the per-family parameters that
`morphology.envs` fills in from an env name.
"""

from gdt.core.registry import Registry
from morphology.tasks.base import EPISODE_LENGTH, Frame, Outcome, Task, Term, evaluate
from morphology.tasks.push import Push
from morphology.tasks.reach import Reach, Reach2Handsup, ReachHandsup, ReachHandsup2
from morphology.tasks.touch import Touch

TASKS: Registry = Registry("task")
for _cls in (Reach, Touch, Push, ReachHandsup, Reach2Handsup, ReachHandsup2):
  TASKS.register(_cls.name, _cls)


def make_task(name: str, **params) -> Task:
  """make_task('push', target_radius=1.5) -> a Task."""
  return TASKS.get(name)(**params)


__all__ = ["EPISODE_LENGTH", "Frame", "Outcome", "Task", "Term", "TASKS", "evaluate", "make_task"]
