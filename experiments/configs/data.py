"""Brax D4RL-style datasets: a PPO run's snapshots -> random / medium / medium-replay / expert / medium-expert.

Commands (rerunning on the same workdir resumes; finished stages are skipped):
  python -m experiments.generate_data --config=experiments/configs/data.py:env=halfcheetah,preset=quick --workdir=workdirs/data_quick
  python -m experiments.generate_data --config=experiments/configs/data.py:env=hopper,preset=quick --workdir=workdirs/data_quick
  python -m experiments.generate_data --config=experiments/configs/data.py:env=walker2d,preset=quick --workdir=workdirs/data_quick
  python -m experiments.generate_data --config=experiments/configs/data.py:env=ant,preset=quick --workdir=workdirs/data_quick
  python -m experiments.generate_data --config=experiments/configs/data.py:env=halfcheetah,preset=full --workdir=workdirs/data

Config arguments: env (a `gdt.envs` name), preset (demo | quick | full), backend ('' = `gdt.envs.default_backend`),
seed, deterministic (act with the policy mode instead of sampling it), medium_fraction. Env options (`ENV_OPTIONS`,
e.g. cheetah_backflip's rotation_reward_weight) are fields of `env_kwargs`:
  python -m experiments.generate_data --config=experiments/configs/data.py:env=cheetah_backflip,preset=quick \
      --config.env_kwargs.reference_reward=True --workdir=workdirs/data_backflip_reference Every field's rule is in
`FIELDS` and `conflicts` below the defaults; `gdt.data.generation.validate_config` applies them before any work.

Presets (wall times on 2 CPU cores shared with other jobs, so pessimistic; default backend spring). PPO is
deterministic on one machine but not across CPUs: the same command gave expert 1214 and 981 on two other machines, so
returns below are this machine's.
  demo   halfcheetah random/expert/medium, 50k transitions per level, 368,640 PPO steps (`make demo`'s data stage).
  quick  all five levels, 100k transitions per level, 600k PPO steps (64 envs, 16 evals), measured 2026-12-01:
         halfcheetah 6m22s (load 1-4), random -71.5 < medium 483.0 < expert 1565.0, medium-replay 128.4,
         medium-expert 1024.0 (snapshots chosen by mode return); hopper: see below (episodes are now whole).
         walker2d 1M PPO steps, measured 2026-12-02 (workdirs/paper/data/walker2d_quick): 1h10m58s at load 20-30
         (PPO 58 min of it), random 237.3 < medium 524.7 < expert 1043.9,
         medium-replay 494.4, medium-expert 697.8. Caveat: this expert STANDS (mean x-velocity 0.05 m/s, 996 of
         1000 steps alive; mode returns plateau at ~1040 from 215k steps on) while medium walks and falls (0.49 m/s,
         ~350 steps): walking needs brax's 7.9M steps, so quick walker2d x-velocity targets are mostly ~0 or short.
         On another host, 2026-12-03 (`launch.paper --experiment=gdt_imitation --runs=^walker2d`, 2 cores shared
         with a training job): 9m17s, random 237.4 < medium 373.8 < expert 792.2, medium-replay 295.3,
         medium-expert 487.9; its expert stands too (0.05 m/s, ~750-step episodes), medium walks (0.43 m/s, ~260
         steps).
         ant 1M PPO steps, measured 2026-12-02 (workdirs/paper/data/ant_quick): 1h35m11s at load 13-30 (PPO ~1h25m),
         random -247.2 < medium 1205.5 < expert 3341.5, medium-replay 715.5, medium-expert 2273.5 (mode returns
         still rising at 1M steps: 3926). On another host, 2026-12-03 (`launch.paper --experiment=gdt_smm
         --runs=^ant_x_velocity`, ~9 min of work beside other jobs): random -269.1 < medium 594.9 < expert 1732.2,
         medium-replay 204.2, medium-expert 1277.3; its medium stands (0.05 m/s), its expert runs 1.52 m/s.
         hopper re-measured 2026-12-02 (workdirs/paper/data/hopper_quick, whole episodes): 46m33s at load 10-27,
         random 126.0 < medium 231.5 < expert 439.5, medium-replay 165.2, medium-expert 319.8 (a weak expert:
         ~150-step episodes). On another host, 2026-12-03 (`launch.paper --experiment=gdt_imitation --runs=^hopper`,
         2 cores, lightly shared): 6m39s, random 125.9 < medium 255.5 < expert 499.0, medium-replay 178.7,
         medium-expert 356.3 (expert episodes ~170 steps).
  full   D4RL scale: 1M transitions per level and brax's published PPO settings (a GPU job; not run here).
Every data workdir's summary.md lists per level the episodes, mean episode length, returns and mean x-velocity per
step (rerunning the command on a finished workdir rewrites it and nothing else).
Medium = the snapshot whose return (`select_levels_by`: the mode policy's by default) is nearest random + medium_fraction
(expert - random).
The measured numbers above date from before commit f8128f5 (XLA's CPU emitters): on the same machine they are
reproduced with `SEQRL_NO_XLA_DEFAULTS=1` in front of the command (BUILD.md, "XLA flags and numerics").
"""

from __future__ import annotations

import ml_collections

from gdt.core.cli import Field
from gdt.core.config import parse_arg
from gdt.core.registry import Registry

ARGS = dict(env="halfcheetah", preset="quick", backend="", seed=0, deterministic=False, medium_fraction=1 / 3)
ALL_LEVELS = ("random", "expert", "medium", "medium-replay", "medium-expert")

# brax's published PPO settings per env (brax training colab), used as is by `full`; `demo`/`quick` keep the
# optimisation settings and shrink the batch and the number of env steps.
PPO_FULL = {
    "halfcheetah": dict(num_timesteps=50_000_000, num_evals=20, reward_scaling=1.0, unroll_length=20,
                        num_minibatches=32, num_updates_per_batch=8, discounting=0.95, learning_rate=3e-4,
                        entropy_cost=1e-3, num_envs=2048, batch_size=512),
    "hopper": dict(num_timesteps=6_553_600, num_evals=20, reward_scaling=10.0, unroll_length=5,
                   num_minibatches=32, num_updates_per_batch=4, discounting=0.97, learning_rate=3e-4,
                   entropy_cost=1e-2, num_envs=2048, batch_size=512),
    "walker2d": dict(num_timesteps=7_864_320, num_evals=20, reward_scaling=5.0, unroll_length=20,
                     num_minibatches=32, num_updates_per_batch=8, discounting=0.997, learning_rate=6e-4,
                     entropy_cost=1e-2, num_envs=128, batch_size=128),
    "ant": dict(num_timesteps=50_000_000, num_evals=10, reward_scaling=10.0, unroll_length=5,
                num_minibatches=32, num_updates_per_batch=4, discounting=0.97, learning_rate=3e-4,
                entropy_cost=1e-2, num_envs=4096, batch_size=2048),
}
# The cheetah variants learn with halfcheetah's settings.
PPO_FULL["cheetah_backflip"] = PPO_FULL["cheetah_vel"] = PPO_FULL["halfcheetah"]

PRESETS: Registry = Registry("data preset")

# Env options: constructor kwargs of the `gdt.envs` classes a data config may set (`--config.env_kwargs.<name>=...`),
# per env: (default, rule); the defaults are the classes' own (tests/test_multi_env.py checks). The data env is built
# with them, every dataset records them (metadata 'env_kwargs') and evaluation rebuilds the same env from there.
ENV_OPTIONS = {
    "cheetah_backflip": {"rotation_reward_weight": (1.0, Field(float, gt=0)),
                         "reference_reward": (False, Field(bool))},  # [GDT]'s |x-vel| + |dz/dt| reward
    "cheetah_vel": {"target_velocity": (1.0, Field(float)), "ctrl_cost_weight": (0.05, Field(float, ge=0))},
}


def env_option_fields(env: str) -> dict[str, Field]:
  """The FIELDS rules of `env`'s options, as dotted `env_kwargs.<name>` fields."""
  return {f"env_kwargs.{name}": rule for name, (_, rule) in ENV_OPTIONS.get(env, {}).items()}


def _ppo_full(env: str) -> dict:
  if env not in PPO_FULL:
    raise ValueError(f"config argument 'env': {env!r} has no PPO settings here; one of {', '.join(sorted(PPO_FULL))}")
  return PPO_FULL[env]


@PRESETS.register("full")
def _full(env: str) -> dict:
  return dict(ppo=dict(_ppo_full(env), num_eval_envs=128), levels=ALL_LEVELS, transitions_per_level=1_000_000,
              rollout_envs=1000)


@PRESETS.register("quick")
def _quick(env: str) -> dict:
  ppo = dict(_ppo_full(env), num_timesteps=QUICK_TIMESTEPS.get(env, 1_000_000), num_evals=16, num_envs=64,
             batch_size=64, num_minibatches=8, num_eval_envs=8)
  return dict(ppo=ppo, levels=ALL_LEVELS, transitions_per_level=100_000, rollout_envs=50)


QUICK_TIMESTEPS = {"halfcheetah": 600_000, "hopper": 600_000, "walker2d": 1_000_000, "ant": 1_000_000}


@PRESETS.register("demo")
def _demo(env: str) -> dict:
  # 368,640 = 36 PPO updates of 10,240 env steps, evaluated every 3 (13 snapshots): enough for the policy's mode to
  # run (halfcheetah's mode stands still until ~190k steps), so 'mode' selection finds a moving medium snapshot.
  ppo = dict(_ppo_full(env), num_timesteps=368_640, num_evals=13, num_envs=64, batch_size=64, num_minibatches=8,
             num_eval_envs=8)
  return dict(ppo=ppo, levels=("random", "expert", "medium"), transitions_per_level=50_000, rollout_envs=50)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, **ARGS)
  preset = PRESETS.get(a.preset)(a.env)
  c = ml_collections.ConfigDict()
  c.env, c.preset, c.backend, c.seed = a.env, a.preset, a.backend, a.seed
  # the env's constructor options (ENV_OPTIONS; empty for envs without any), recorded in the dataset's metadata
  c.env_kwargs = ml_collections.ConfigDict({k: d for k, (d, _) in ENV_OPTIONS.get(a.env, {}).items()})
  c.policy = "deterministic" if a.deterministic else "stochastic"  # D4RL behaviour policies sample
  c.medium_fraction = a.medium_fraction  # medium = snapshot nearest random + f (expert - random)
  c.expert_snapshot = "best"  # 'best' return (by `select_levels_by`) or 'final'
  # Returns that rank the snapshots for expert/medium: 'mode' (acting with the policy's mode, what a deterministic
  # DT/CDT/BC imitates; see gdt.data.generation) or 'ppo_eval' (brax PPO's sampled-action evaluation return).
  c.select_levels_by = "mode"
  c.mode_eval_episodes = 4
  c.episode_length = 1000
  c.levels = tuple(preset["levels"])
  c.transitions_per_level = preset["transitions_per_level"]
  c.rollout_envs = preset["rollout_envs"]
  c.ppo = ml_collections.ConfigDict(dict(
      normalize_observations=True, action_repeat=1,
      policy_hidden_layer_sizes=(32,) * 4, value_hidden_layer_sizes=(256,) * 5, **preset["ppo"]))
  return c


# The rule of every field above, read by gdt.data.generation.validate_config before anything is written (a field not
# listed here or, for `env_kwargs.*`, in `env_option_fields(env)` is refused as unknown). Checked there against the code: env (with PPO settings), backend, preset,
# levels and select_levels_by name registered entries; ppo.num_envs is split over the local devices.
_POSITIVE = Field(int, ge=1)
FIELDS = {
    "env": Field(str, nonempty=True), "preset": Field(str, nonempty=True),
    "backend": Field(str),  # '' = gdt.envs.default_backend(env)
    "seed": Field(int, ge=0, lt=2**31 - 1),
    "policy": Field(str, choices=("deterministic", "stochastic")),
    "medium_fraction": Field(float, gt=0, lt=1),
    "expert_snapshot": Field(str, choices=("best", "final")),
    "select_levels_by": Field(str, nonempty=True),
    "mode_eval_episodes": _POSITIVE, "episode_length": _POSITIVE,
    "levels": Field(tuple, items=str, nonempty=True),
    "transitions_per_level": _POSITIVE, "rollout_envs": _POSITIVE,
}
# The rules of a `ppo` block (gdt.core.ppo.ppo_kwargs), shared with the MxT experts' config.
PPO_FIELDS = {
    "ppo.normalize_observations": Field(bool), "ppo.action_repeat": _POSITIVE,
    "ppo.policy_hidden_layer_sizes": Field(tuple, items=int, nonempty=True),
    "ppo.value_hidden_layer_sizes": Field(tuple, items=int, nonempty=True),
    "ppo.num_timesteps": _POSITIVE, "ppo.num_evals": _POSITIVE, "ppo.reward_scaling": Field(float, gt=0),
    "ppo.unroll_length": _POSITIVE, "ppo.num_minibatches": _POSITIVE, "ppo.num_updates_per_batch": _POSITIVE,
    "ppo.discounting": Field(float, gt=0, le=1), "ppo.learning_rate": Field(float, gt=0, le=1),
    "ppo.entropy_cost": Field(float, ge=0), "ppo.num_envs": _POSITIVE, "ppo.batch_size": _POSITIVE,
    "ppo.num_eval_envs": _POSITIVE,
}
FIELDS.update(PPO_FIELDS)


def ppo_conflicts(p) -> list[tuple[str, str]]:
  """(field, why) of the values of a `ppo` block that cannot work together."""
  out = []
  for name in ("policy_hidden_layer_sizes", "value_hidden_layer_sizes"):
    if any(size < 1 for size in p[name]):
      out.append((f"ppo.{name}", f"every layer needs >= 1 unit, got {tuple(p[name])}"))
  if p.batch_size * p.num_minibatches % p.num_envs:  # brax PPO asserts this when it starts
    out.append(("ppo.num_envs", f"ppo.batch_size * ppo.num_minibatches = {p.batch_size * p.num_minibatches} is not "
                                f"a multiple of ppo.num_envs={p.num_envs}"))
  return out


def conflicts(c) -> list[tuple[str, str]]:
  """(field, why) of every set of values in `c` that cannot work together; each value already obeys FIELDS."""
  out = []
  repeated = sorted({level for level in c.levels if list(c.levels).count(level) > 1})
  if repeated:
    out.append(("levels", f"lists {', '.join(repeated)} more than once"))
  return out + ppo_conflicts(c.ppo)
