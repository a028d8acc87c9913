"""Brax D4RL-style datasets: a PPO run's snapshots -> random / medium / medium-replay / expert / medium-expert.

Commands (rerunning on the same workdir resumes; finished stages are skipped):
  python -m experiments.generate_data --config=experiments/configs/data.py:env=halfcheetah,preset=quick --workdir=workdirs/data_quick
  python -m experiments.generate_data --config=experiments/configs/data.py:env=hopper,preset=quick --workdir=workdirs/data_quick
  python -m experiments.generate_data --config=experiments/configs/data.py:env=halfcheetah,preset=full --workdir=workdirs/data

Config arguments: env (a `gdt.envs` name), preset (demo | quick | full), backend ('' = `gdt.envs.default_backend`),
seed, deterministic (act with the policy mode instead of sampling it), medium_fraction.

Presets (wall times on 2 CPU cores shared with other jobs, so pessimistic; default backend spring). PPO is
deterministic on one machine but not across CPUs: the same command gave expert 1214 and 981 on two other machines, so
returns below are this machine's.
  demo   halfcheetah random/expert/medium, 50k transitions per level, 368,640 PPO steps (`make demo`'s data stage).
  quick  all five levels, 100k transitions per level, 600k PPO steps (64 envs, 16 evals), measured 2026-12-01:
         halfcheetah 6m22s (load 1-4), random -71.5 < medium 483.0 < expert 1565.0, medium-replay 128.4,
         medium-expert 1024.0 (snapshots chosen by mode return); hopper: not re-measured since episodes are
         whole (it terminates, so its data changed: the old stream design dropped unfinished long episodes).
  full   D4RL scale: 1M transitions per level and brax's published PPO settings (a GPU job; not run here).
Medium = the snapshot whose return (`select_levels_by`: the mode policy's by default) is nearest random + medium_fraction
(expert - random).
"""

from __future__ import annotations

import ml_collections

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


@PRESETS.register("full")
def _full(env: str) -> dict:
  return dict(ppo=dict(PPO_FULL[env], num_eval_envs=128), levels=ALL_LEVELS, transitions_per_level=1_000_000,
              rollout_envs=1000)


@PRESETS.register("quick")
def _quick(env: str) -> dict:
  ppo = dict(PPO_FULL[env], num_timesteps=QUICK_TIMESTEPS.get(env, 1_000_000), num_evals=16, num_envs=64,
             batch_size=64, num_minibatches=8, num_eval_envs=8)
  return dict(ppo=ppo, levels=ALL_LEVELS, transitions_per_level=100_000, rollout_envs=50)


QUICK_TIMESTEPS = {"halfcheetah": 600_000, "hopper": 600_000}


@PRESETS.register("demo")
def _demo(env: str) -> dict:
  # 368,640 = 36 PPO updates of 10,240 env steps, evaluated every 3 (13 snapshots): enough for the policy's mode to
  # run (halfcheetah's mode stands still until ~190k steps), so 'mode' selection finds a moving medium snapshot.
  ppo = dict(PPO_FULL[env], num_timesteps=368_640, num_evals=13, num_envs=64, batch_size=64, num_minibatches=8,
             num_eval_envs=8)
  return dict(ppo=ppo, levels=("random", "expert", "medium"), transitions_per_level=50_000, rollout_envs=50)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, **ARGS)
  preset = PRESETS.get(a.preset)(a.env)
  c = ml_collections.ConfigDict()
  c.env, c.preset, c.backend, c.seed = a.env, a.preset, a.backend, a.seed
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
