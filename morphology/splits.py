"""Named train/test env lists for zero-shot and few-shot studies (mxt_reference 2.5, 5.4).

A `Split` is three lists of registered env names: BC trains on `train_envs`, evaluation runs on
`test_envs` (held out), and few-shot fine-tuning uses `finetune_envs` (the held-out envs' data).
Families of splits are generated from rules, not typed out:
- held-out morphology: `{agent}_{task}_zs_{n}` trains on the other plain sizes of that suite
  (ant 2..6, centipede 3..7; `ant_reach_zs_5` and `centipede_touch_zs_4` are the reference's examples);
  `ant_{task}_small_zs_{n}` the same among ants with 2..4 legs, the sizes whose experts the quick expert preset
  trains on CPU (`ant_touch_small_zs_3`: train on 2 and 4 legs, hold out 3);
- held-out task: `{agent}_{task}_task_zs` trains on the agent's other plain-size tasks among
  reach/touch/push and tests on the held-out task;
- held-out broken legs: `ant_{task}_broken_zs` trains on intact (plain, mass, size) ants, tests on
  every broken ant.

    split = get_split("ant_reach_zs_5")  # Split(train_envs=(ant_reach_2, ...), test_envs=(ant_reach_5,), ...)
"""

from __future__ import annotations

import dataclasses

from gdt.core.registry import Registry
from morphology import envs


@dataclasses.dataclass(frozen=True)
class Split:
  train_envs: tuple[str, ...]
  test_envs: tuple[str, ...]
  finetune_envs: tuple[str, ...] = ()

  @property
  def all_envs(self) -> tuple[str, ...]:
    """Every env the split touches (sizes the token padding so it covers the test morphologies)."""
    return tuple(dict.fromkeys(self.train_envs + self.test_envs + self.finetune_envs))


SPLITS: Registry[Split] = Registry("split")
_BASIC_TASKS = ("reach", "touch", "push")
# Plain sizes the splits use; centipedes start at 3 torsos as in the reference's centipede_touch_zs_4.
_PLAIN_SIZES = {"ant": envs.ANT_N, "centipede": envs.CENTIPEDE_N[1:]}
_SMALL_ANTS = (2, 3, 4)


def _plain(agent: str, task: str, sizes) -> tuple[str, ...]:
  return tuple(f"{agent}_{task}_{n}" for n in sizes)


def held_out_morphology(agent: str, task: str, held_out: int, sizes=None) -> Split:
  test = _plain(agent, task, (held_out,))
  sizes = _PLAIN_SIZES[agent] if sizes is None else sizes
  return Split(_plain(agent, task, [n for n in sizes if n != held_out]), test, test)


def held_out_task(agent: str, task: str) -> Split:
  sizes = _PLAIN_SIZES[agent]
  test = _plain(agent, task, sizes)
  train = sum((_plain(agent, t, sizes) for t in _BASIC_TASKS if t != task), ())
  return Split(train, test, test)


def held_out_broken(task: str) -> Split:
  names = [n for n in envs.registered_names() if n.startswith(f"ant_{task}_") and envs.parse(n).suite.task_word == task]
  test = tuple(n for n in names if envs.parse(n).family == "broken_ant")
  return Split(tuple(n for n in names if n not in test), test, test)


for _agent, _sizes in _PLAIN_SIZES.items():
  for _task in _BASIC_TASKS:
    for _n in _sizes:
      SPLITS.register(f"{_agent}_{_task}_zs_{_n}", held_out_morphology(_agent, _task, _n))
    SPLITS.register(f"{_agent}_{_task}_task_zs", held_out_task(_agent, _task))
for _task in _BASIC_TASKS:
  for _n in _SMALL_ANTS:
    SPLITS.register(f"ant_{_task}_small_zs_{_n}", held_out_morphology("ant", _task, _n, _SMALL_ANTS))
for _task in _BASIC_TASKS:
  SPLITS.register(f"ant_{_task}_broken_zs", held_out_broken(_task))


def _union(*names: str) -> Split:
  parts = [SPLITS.get(n) for n in names]
  join = lambda field: tuple(dict.fromkeys(x for p in parts for x in getattr(p, field)))
  return Split(join("train_envs"), join("test_envs"), join("finetune_envs"))


# The reference's `example` (its `fs_example` was a duplicate): both held-out morphology examples.
SPLITS.register("example", _union("ant_reach_zs_5", "centipede_touch_zs_4"))


def get_split(name: str) -> Split:
  """The named split; unknown names list the closest ones."""
  return SPLITS.get(name)
