"""Switching episodes (`gdt.data.switching`): one PPO run's expert until a uniformly random step, then another's.

  python -m launch.paper --experiment=gdt_bimodal --scale=quick   # runs it as the data job halfcheetah_stand_switch_quick

Config arguments: first, second ('env@DIR': a finished `experiments.generate_data` workdir DIR, relative to this
job's workdir, and the env of its run), seed, transitions (per dataset), deterministic (act with each policy's mode;
default True, as the standing cheetah's own data: PPO's sampling noise makes it flail).
"""

from __future__ import annotations

import ml_collections

from gdt.core.cli import Field
from gdt.core.config import parse_arg

ARGS = dict(first="halfcheetah@../halfcheetah_quick", second="cheetah_vel@../cheetah_vel_stand_quick_expert", seed=0,
            transitions=100_000, deterministic=True)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, **ARGS)
  c = ml_collections.ConfigDict()
  c.first, c.second, c.seed = a.first, a.second, a.seed
  c.policy = "deterministic" if a.deterministic else "stochastic"
  c.transitions_per_level = a.transitions
  c.rollout_envs = 50
  return c


# The rule of every field above (gdt.data.switching.validate_config applies them; it also checks that both runs exist,
# have finished, observe alike and share a policy network).
FIELDS = {
    "first": Field(str, nonempty=True), "second": Field(str, nonempty=True),
    "seed": Field(int, ge=0, lt=2**31 - 1),
    "policy": Field(str, choices=("deterministic", "stochastic")),
    "transitions_per_level": Field(int, ge=1), "rollout_envs": Field(int, ge=1),
}
