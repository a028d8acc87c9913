"""How much a trained policy's action depends on its conditioning: one dataset's trajectories teacher-forced through
the policy, conditioned on their own hindsight labels z_t or on another dataset's trajectories' z_t at the same step.

  python -m experiments.conditioning_sensitivity \
      --runs=workdirs/paper/gdt_bimodal_quick_density/runs/bimodal_cdt_s0,\
workdirs/paper/gdt_bimodal_quick_density/runs/bimodal_dt_s0 \
      --data=workdirs/paper/data/cheetah_vel_stand_quick_expert/datasets/cheetah_vel-expert.npz \
      --other=workdirs/paper/data/halfcheetah_quick/datasets/halfcheetah-expert.npz

For each run (its latest checkpoint) and each step t of --steps, trajectory i of the first --trajectories of --data is
fed as the evaluation's rollout feeds a policy (`gdt.evaluate.policy_step_fns`: the K normalised states up to s_t,
the actions before a_t, the slot of a_t zero, a right-aligned window masked before the episode's start), with z_t
relabelled by the run's own `Labels` from trajectory i itself ("own") or from trajectory i of --other ("swapped").
Printed per t, means over the trajectories: error = |a(own) - a_t| (L2 to the data's action) and swap =
|a(swapped) - a(own)|. A policy that ignores its conditioning has swap 0, as BC always does. BDT (its encoder reads
the demonstration's states, not a z_t) is refused.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from absl import flags

from gdt import hindsight
from gdt.conditioning import CONDITIONINGS
from gdt.core import cli
from gdt.data.trajectories import Trajectories

DEFAULT_STEPS = (0, 5, 10, 20, 50, 100, 300)


def hindsight_labels(policy, trajs: Trajectories) -> np.ndarray:
  """z_t [N, T, C] of every step of `trajs` under the policy's own labels (what its training relabelled with)."""
  return policy.labels.relabel(hindsight.feature_values(trajs, policy.feature), trajs.mask())


def sensitivity(policy, trajs: Trajectories, other: Trajectories, steps: Sequence[int], num: int
                ) -> dict[int, tuple[float, float]]:
  """{t: (error, swap)} for the first `num` trajectories of `trajs` against those of `other` (module docstring);
  bad inputs are refused before any model call."""
  if CONDITIONINGS.get(policy.conditioning).reads_demo:
    raise ValueError(f"conditioning {policy.conditioning!r} reads demonstration states, not a z_t: nothing to swap")
  for name, t in (("--data", trajs), ("--other", other)):
    if t.num_trajectories < num:
      raise ValueError(f"{name} has {t.num_trajectories} trajectories, fewer than --trajectories={num}")
    if t.obs_dim != policy.model.state_dim:
      raise ValueError(f"{name}: observations of size {t.obs_dim}, the policy reads {policy.model.state_dim}")
  shortest = int(min(trajs.lengths[:num].min(), other.lengths[:num].min()))
  if not steps or min(steps) < 0 or max(steps) >= shortest:
    raise ValueError(f"--steps must lie in [0, {shortest}) (the shortest of the trajectories used), got {list(steps)}")
  own, swapped = hindsight_labels(policy, trajs)[:num], hindsight_labels(policy, other)[:num]
  states = policy.normalize(trajs.observations[:num]).astype(np.float32)
  actions = trajs.actions[:num].astype(np.float32)
  out = {}
  for t in steps:
    a_own, a_swapped = (_act_at(policy, t, z, states, actions) for z in (own, swapped))
    out[t] = (float(np.linalg.norm(a_own - actions[:, t], axis=-1).mean()),
              float(np.linalg.norm(a_swapped - a_own, axis=-1).mean()))
  return out


def _act_at(policy, t: int, z, states, actions) -> np.ndarray:
  """The policy's action at step t of each trajectory given z [N, T, C], states (normalised) and actions [N, T, .]
  in the rollout's window: the K steps up to t right-aligned, masked before the start, the slot of a_t zero."""
  k, num = policy.context_length, len(states)
  pos = t - k + 1 + np.arange(k)
  valid, idx = pos >= 0, np.clip(pos, 0, None)

  def window(x):
    return np.where(valid[None, :, None], x[:, idx], 0.0).astype(np.float32)

  acts = window(actions)
  acts[:, -1] = 0.0  # a_t is what the policy is asked for
  timesteps = np.broadcast_to(np.clip(pos, 0, policy.model.max_timestep - 1), (num, k)).astype(np.int32)
  return np.asarray(policy.apply(window(z), window(states), acts, timesteps, np.broadcast_to(valid, (num, k))))[:, -1]


def table(result: dict[int, tuple[float, float]]) -> str:
  lines = ["| step t | error: own z_t vs the data's action | swap: action change with the other z_t |", "|---|---|---|"]
  lines += [f"| {t} | {err:.3f} | {swap:.3f} |" for t, (err, swap) in result.items()]
  return "\n".join(lines)


def define_flags() -> dict:
  return {
      "runs": flags.DEFINE_list("runs", None, "run workdirs (their latest checkpoint)"),
      "data": flags.DEFINE_string("data", None, "dataset (.npz) whose trajectories are fed"),
      "other": flags.DEFINE_string("other", None, "dataset (.npz) whose trajectories' z_t are swapped in"),
      "steps": flags.DEFINE_list("steps", [str(t) for t in DEFAULT_STEPS], "steps t of the episodes to probe"),
      "trajectories": flags.DEFINE_integer("trajectories", 8, "the first N trajectories of each dataset", lower_bound=1),
  }


def main(argv, f: dict):
  del argv
  from gdt import checkpoint  # noqa: PLC0415  (jax only once the flags parsed)
  for name in ("runs", "data", "other"):
    if not f[name].value:
      raise ValueError(f"--{name} is required")
  trajs, other = Trajectories.load(f["data"].value), Trajectories.load(f["other"].value)
  steps = [int(s) for s in f["steps"].value]
  for workdir in f["runs"].value:
    policy = checkpoint.load_policy(workdir)
    result = sensitivity(policy, trajs, other, steps, f["trajectories"].value)
    print(f"\n{workdir} ({policy.conditioning}, {policy.feature}; {f['trajectories'].value} trajectories of "
          f"{f['data'].value}, z_t swapped with {f['other'].value}'s)\n{table(result)}", flush=True)


if __name__ == "__main__":
  cli.run(functools.partial(main, f=define_flags()))
