"""Scripted episodes (`gdt.data.scripted`): actions a fixed function of time, no policy learnt first.

  python -m launch.paper --experiment=gdt_bimodal --scale=demo   # its data jobs halfcheetah_<behaviour>_scripted

Config arguments: env (a cheetah), behaviour ('stand': no torque, or 'rock': a sine on every joint that rocks the
cheetah in place), seed, transitions.
"""

from __future__ import annotations

import ml_collections

from gdt.core.cli import Field
from gdt.core.config import parse_arg

ARGS = dict(env="halfcheetah", behaviour="stand", seed=0, transitions=50_000)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, **ARGS)
  c = ml_collections.ConfigDict()
  c.env, c.behaviour, c.seed, c.transitions = a.env, a.behaviour, a.seed, a.transitions
  c.episode_length = 1000
  c.rollout_envs = 50
  return c


# The rule of every field above (gdt.data.scripted.validate_config applies them; it also checks that the env is
# registered and the behaviour is scripted for it).
FIELDS = {
    "env": Field(str, nonempty=True), "behaviour": Field(str, nonempty=True),
    "seed": Field(int, ge=0, lt=2**31 - 1), "transitions": Field(int, ge=1),
    "episode_length": Field(int, ge=1), "rollout_envs": Field(int, ge=1),
}
