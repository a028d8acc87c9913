"""Evaluation of GDT policies: conditioning schedules, batched Brax rollouts, W1 metrics, result tables.

Every (target, episode) pair is rolled out in parallel by the core rollout (`gdt.core.rollout`: one jit'd
`lax.scan` per chunk over a vmapped Brax env) with a fixed-size K-step context buffer (roll left, write the newest
step). Targets (`gdt.targets`) carry the policy's own `Labels`; nothing here re-reads rtg_scale, gamma, the feature
or the bins from a config. The policy step (`policy_step_fns`), the rollout's inputs (`prepare_rollout`) and the
scoring (`score_rollout`) are simulator-free: `gdt.gym_eval` drives them with a Gymnasium vector env. `EVALUATORS`
maps a policy's backend to its evaluation (Brax backends here, Gymnasium MuJoCo ones in `gdt.gym_eval`).

Fidelity switches (gdt_reference §2.6, §4, §8), set in the `eval` block of the config:
- `schedule='open_loop'` is the reference's time-indexed conditioning (the target's own h_t or future
  sum at the same t); `closed_loop` updates it from what the rollout achieved (DT's RTG decrement; CDT's T p* minus
  the achieved counts bin by bin, gdt_reference §2.6 (b)); `closed_loop_nearest` is the same except that each
  achieved step uses up CDT's target mass in the nearest bin that has some left (`gdt.conditioning.use_nearest_mass`).
- `xvel_offset_like_gdt=True` records state features of the next state s_{t+1}, as `eval_cdt.py` did;
  the default records the state s_t the policy acted in, which is what the target histogram uses.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gdt import envs as gdt_envs
from gdt import hindsight, metrics
from gdt.conditioning import CONDITIONINGS, ScheduleStep, use_nearest_mass
from gdt.core import rollout
from gdt.core.registry import Registry
from gdt.core.workdir import atomic_write_bytes, config_to_dict
from gdt.targets import GROUPS, Targets, histograms

# The keys an evaluation reads from the config's `eval` block (their defaults live in the config files).
EVAL_KEYS = ("episodes_per_target", "schedule", "xvel_offset_like_gdt", "chunk_steps", "plots")


# ----------------------------------------------------------------------------------------------
# Conditioning schedules (pure jnp; E = number of parallel envs)

SCHEDULES = Registry("conditioning schedule")


@SCHEDULES.register("open_loop")
def open_loop(conditioning: str, step: ScheduleStep) -> jax.Array:
  """The reference's time-indexed schedule: the target's own h_t / future sum at the same t. -> [E,C]."""
  del conditioning
  return step.precomputed


@SCHEDULES.register("closed_loop")
def closed_loop(conditioning: str, step: ScheduleStep) -> jax.Array:
  """Updated from what was achieved so far (the kind's `closed_loop` in gdt.conditioning). -> [E,C]."""
  return CONDITIONINGS.get(conditioning).closed_loop(step)


@SCHEDULES.register("closed_loop_nearest")
def closed_loop_nearest(conditioning: str, step: ScheduleStep) -> jax.Array:
  """closed_loop, except that CDT's histogram is what is left of T p* after each achieved step used up the target
  mass nearest to its bin (`gdt.conditioning.use_nearest_mass`), not bin by bin. -> [E,C]."""
  kind = CONDITIONINGS.get(conditioning)
  return (kind.closed_loop_nearest or kind.closed_loop)(step)


# ----------------------------------------------------------------------------------------------
# The policy step of the batched rollout


class _Carry(NamedTuple):
  states: jax.Array  # [E, K, S] normalised
  actions: jax.Array  # [E, K, A]
  cond: jax.Array  # [E, K, C]
  counts: jax.Array  # [E, B]
  achieved_sum: jax.Array  # [E]
  left: jax.Array  # [E, B] target mass left after each step used up the nearest (`use_nearest_mass`)


def _push(buffer: jax.Array, x: jax.Array) -> jax.Array:
  """Rolls a [E, K, ...] buffer left by one step and writes x [E, ...] as the newest step."""
  return jnp.concatenate([buffer[:, 1:], x[:, None]], axis=1)


def _feature_fn(name: str, env_name: str, layout: Mapping[str, int] | None = None
                ) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """(obs [E,S], reward [E]) -> phi [E], via `hindsight.get_feature` (one definition of phi, registered features
  and observation-layout names alike); `layout` defaults to the Brax env's."""
  layout = gdt_envs.observation_layout(env_name) if layout is None else dict(layout)
  metadata = {"env": env_name, "observation_layout": layout}
  fn = hindsight.get_feature(name, metadata)

  def feature(obs, reward):
    data = {"observations": obs[:, None], "rewards": reward[:, None]}
    return jnp.asarray(fn(data, metadata))[:, 0]

  return feature


def encoder_window(demo_states: jax.Array, lengths: jax.Array, t: jax.Array, context_length: int, horizon: int,
                   max_timestep: int, like_reference: bool = False) -> dict:
  """BDT encoder input at step t: demo states t-K+1 .. t+H-1 (normalised), masked outside [0, demo_len).

  demo_states [M, T, S], lengths [M] -> {'states' [M, K+H-1, S], 'timesteps' [M, K+H-1], 'mask' [M, K+H-1]},
  the layout `gdt.train.sample_batch` gives the encoder in training (zeros where masked). With
  `like_reference` (for `bdt_unflipped_like_reference` policies, which encode the first K entries) the
  window starts at t, so the encoder sees demo states t .. t+K-1 as `eval_bdt.py` fed them (§3.3).
  """
  first = t if like_reference else t - context_length + 1
  pos = first + jnp.arange(context_length + horizon - 1)  # [L]
  states = demo_states[:, jnp.clip(pos, 0, demo_states.shape[1] - 1)]  # [M, L, S]
  mask = (pos[None] >= 0) & (pos[None] < lengths[:, None])  # [M, L]
  return {"states": jnp.where(mask[..., None], states, 0.0),
          "timesteps": jnp.where(mask, jnp.clip(pos, 0, max_timestep - 1), 0).astype(jnp.int32), "mask": mask}


def policy_step_fns(model, env_name: str, context_length: int, conditioning: str, schedule: str,
                    features: tuple[str, ...], xvel_offset_like_gdt: bool, layout: Mapping[str, int] | None = None):
  """(act, observe) of the GDT policy for E envs at once, as `gdt.core.rollout` calls them; pure jnp, so any
  simulator can drive them (the Brax scan here, the Gymnasium vector env in `gdt.gym_eval`).

  act reads only `env_state.obs` [E,S]; observe reads `tr.state.obs`, `tr.next_state.obs`/`.reward`, `tr.action`
  and `tr.valid`. Their inputs are {'params', 'norm': (mean, std), 'tgt': target arrays, 'env_target': [E]}
  (`prepare_rollout`). `layout` names the observation features (default: the Brax env's).
  """
  k = context_length
  horizon = model.encoder_horizon
  max_t = model.max_timestep
  feature_fns = [_feature_fn(f, env_name, layout) for f in features]
  schedule_fn = SCHEDULES.get(schedule)
  reads_demo = CONDITIONINGS.get(conditioning).reads_demo  # BDT: the encoder reads demo states

  def act(inputs, carry: _Carry, env_state, t, key):
    del key  # the policy is deterministic
    mean, std = inputs["norm"]
    tgt, env_target = inputs["tgt"], inputs["env_target"]
    states = _push(carry.states, (env_state.obs - mean) / std)
    actions = _push(carry.actions, jnp.zeros_like(carry.actions[:, 0]))
    sched = ScheduleStep(
        t=t, precomputed=tgt["cond"][env_target, jnp.minimum(t, tgt["cond"].shape[1] - 1)],
        histogram=tgt["histograms"][env_target], length=tgt["lengths"][env_target].astype(jnp.float32),
        total=tgt["totals"][env_target], counts=carry.counts, achieved_sum=carry.achieved_sum,
        rtg_scale=tgt["rtg_scale"], left=carry.left)
    if reads_demo:
      cond_buf = carry.cond
      window = encoder_window(tgt["demo_states_norm"], tgt["lengths"], t, k, horizon, max_t,
                              like_reference=model.bdt_unflipped_like_reference)
      cond_in = jax.tree.map(lambda x: x[env_target], window)
    else:
      cond_buf = _push(carry.cond, schedule_fn(conditioning, sched))
      cond_in = cond_buf
    pos = t - k + 1 + jnp.arange(k)
    mask = jnp.broadcast_to(pos >= 0, states.shape[:2])
    timesteps = jnp.broadcast_to(jnp.clip(pos, 0, max_t - 1), states.shape[:2]).astype(jnp.int32)
    action = model.apply({"params": inputs["params"]}, cond_in, states, actions, timesteps, mask,
                         deterministic=True)[:, -1]
    return action, carry._replace(states=states, actions=actions.at[:, -1].set(action), cond=cond_buf)

  def observe(inputs, carry: _Carry, tr: rollout.Transition):
    tgt = inputs["tgt"]
    feature_obs = tr.next_state.obs if xvel_offset_like_gdt else tr.state.obs
    phi = jnp.stack([f(feature_obs, tr.next_state.reward) for f in feature_fns], axis=-1)  # [E, F]
    vf = tr.valid.astype(jnp.float32)
    bin_index = hindsight.bin_index(phi[:, 0], tgt["edges"])
    bins = jax.nn.one_hot(bin_index, tgt["histograms"].shape[-1])
    carry = carry._replace(counts=carry.counts + vf[:, None] * bins, achieved_sum=carry.achieved_sum + vf * phi[:, 0],
                           left=use_nearest_mass(carry.left, bin_index, vf))
    out = {"features": phi * vf[:, None], "rewards": tr.next_state.reward * vf, "actions": tr.action,
           "observations": tr.state.obs}
    return carry, out

  return act, observe


@functools.lru_cache(maxsize=16)
def _rollout_fns(model, env_name: str, backend: str, context_length: int, conditioning: str, schedule: str,
                 features: tuple[str, ...], xvel_offset_like_gdt: bool, chunk_steps: int,
                 env_kwargs: tuple[tuple[str, object], ...] = ()):
  """(env, run_chunk) for one model/env (built with `env_kwargs` items)/protocol: the core rollout's chunk with the
  GDT policy step.

  Shapes of targets and batch are traced, so new params or targets of the same shapes reuse the compilation.
  """
  env = gdt_envs.make(env_name, backend=backend, **dict(env_kwargs))
  act, observe = policy_step_fns(model, env_name, context_length, conditioning, schedule, features,
                                 xvel_offset_like_gdt)
  return env, rollout.make_chunk(env, act, observe, chunk_steps)


# ----------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """Per-target metrics, aggregates and the raw rollout arrays ([M, episodes, T] unless noted)."""
  targets: Targets
  rows: tuple[dict, ...]  # per target: name, w1 (+ w1_<feature> for extra scored features), returns, length
  aggregates: dict  # {w1, w1_<feature>, mean_return[, normalized_return]}_{best, middle, all}
  features: dict  # scored feature name -> [M, n, T] achieved values (0 where invalid)
  achieved_histograms: dict  # scored feature name -> [M, B]
  valid: np.ndarray  # [M, n, T] bool
  rewards: np.ndarray  # [M, n, T]
  actions: np.ndarray  # [M, n, T, A]
  observations: np.ndarray  # [M, n, T, S] the states the policy acted in
  protocol: dict  # schedule, episodes, offset flag, timing (compile_s, run_s, env_steps_per_s)

  def write(self, workdir: str, prefix: str) -> dict[str, str]:
    """Writes eval_<prefix>.npz (raw features, masks, rewards, target histograms, edges), .json, PNG plots.

    A result with a non-finite score (a W1 or mean return of a target or aggregate: e.g. a policy with NaN weights)
    never replaces earlier files: it goes to eval_<prefix>.nonfinite.{json,npz} and FloatingPointError is raised.
    """
    from gdt import plots
    os.makedirs(workdir, exist_ok=True)
    scored = [(r.get("name", str(i)), r) for i, r in enumerate(self.rows)] + [("aggregates", self.aggregates)]
    bad = [f"{where}.{k}" for where, values in scored for k, v in values.items()
           if k.startswith(("w1", "mean_return", "normalized_return")) and not np.isfinite(v)]  # not target_*
    base = os.path.join(workdir, f"eval_{prefix}" + (".nonfinite" if bad else ""))
    arrays = {"names": np.asarray(self.targets.names), "valid": self.valid, "rewards": self.rewards,
              "lengths": self.targets.lengths, "target_returns": self.targets.returns}
    for name, edges, hist in self.targets.score_features:
      arrays[f"features_{name}"] = self.features[name]
      arrays[f"edges_{name}"] = edges
      arrays[f"target_histograms_{name}"] = hist
      arrays[f"achieved_histograms_{name}"] = self.achieved_histograms[name]
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(base + ".npz", buf.getvalue())
    summary = {"targets": list(self.rows), "aggregates": self.aggregates, "protocol": self.protocol,
               "feature": self.targets.feature, "conditioning": self.targets.conditioning}
    atomic_write_bytes(base + ".json", (json.dumps(summary, indent=2, default=float) + "\n").encode())
    if bad:
      raise FloatingPointError(
          f"evaluation {prefix!r} in {workdir} has non-finite scores ({', '.join(bad[:6])}"
          f"{', ...' if len(bad) > 6 else ''}): wrote it to {base}.json/.npz and left eval_{prefix}.* untouched; "
          "check the policy's checkpoint (non-finite params?) and the rollout")
    paths = {"npz": base + ".npz", "json": base + ".json"}
    if self.protocol["plots"]:
      for name, edges, hist in self.targets.score_features:
        path = f"{base}_{name}.png"
        plots.histogram_grid(path, self.targets.names, edges, hist, self.achieved_histograms[name],
                             title=f"{prefix}: {name}", w1=[r[_w1_key(name, self.targets)] for r in self.rows])
        paths[f"png_{name}"] = path
    return paths


def _w1_key(feature: str, targets: Targets) -> str:
  return "w1" if feature == targets.feature else f"w1_{feature}"


def eval_settings(config) -> dict:
  """The EVAL_KEYS of an eval config block (ConfigDict or mapping); every key is required."""
  cfg = config_to_dict(config)
  missing = [k for k in EVAL_KEYS if k not in cfg]
  if missing:
    raise KeyError(f"eval config lacks {missing}; the defaults are in experiments/configs/gdt_base.py")
  return {k: cfg[k] for k in EVAL_KEYS}


class RolloutSetup(NamedTuple):
  """What every simulator's rollout of one evaluation shares (`prepare_rollout`): E = targets x episodes envs,
  target-major (env i plays target i // episodes_per_target)."""
  settings: dict  # the eval block's EVAL_KEYS
  episodes: int  # per target
  features: tuple[str, ...]  # scored features, the conditioning feature first
  inputs: dict  # the policy step's inputs (`policy_step_fns`)
  carry: _Carry  # the policy step's initial carry
  env_target: np.ndarray  # [E] target index of each env


def prepare_rollout(policy, targets: Targets, config) -> RolloutSetup:
  """Checks that `targets` carry `policy`'s labels and builds the policy step's inputs and initial carry."""
  settings = eval_settings(config)
  labels = targets.labels
  if not labels.same_as(policy.labels):
    raise ValueError(f"targets were labelled with {labels.to_json()} but the policy was trained with "
                     f"{policy.labels.to_json()}; build targets from policy.labels")
  if settings["schedule"].startswith("closed_loop") and labels.conditioning == "rtg" and labels.gamma != 1.0:
    raise ValueError("the closed-loop rtg schedule subtracts undiscounted sums: it needs gamma == 1")
  n_ep = int(settings["episodes_per_target"])
  m = targets.num_targets
  features = tuple(name for name, _, _ in targets.score_features)
  tgt = {"cond": jnp.asarray(targets.cond), "histograms": jnp.asarray(targets.histograms),
         "lengths": jnp.asarray(targets.lengths, jnp.int32), "totals": jnp.asarray(targets.totals),
         "edges": jnp.asarray(labels.edges), "rtg_scale": jnp.float32(labels.rtg_scale)}
  if targets.demo_states is not None:
    valid_demo = np.arange(targets.demo_states.shape[1])[None] < targets.lengths[:, None]
    tgt["demo_states_norm"] = jnp.asarray(
        (targets.demo_states - np.asarray(policy.state_mean)) / np.asarray(policy.state_std) * valid_demo[..., None],
        jnp.float32)
  env_target = np.repeat(np.arange(m), n_ep)
  num_envs = m * n_ep
  inputs = {"params": policy.params, "tgt": tgt, "env_target": jnp.asarray(env_target),
            "norm": (jnp.asarray(policy.state_mean, jnp.float32), jnp.asarray(policy.state_std, jnp.float32))}
  s, a, k = policy.model.state_dim, policy.model.act_dim, policy.context_length
  carry = _Carry(states=jnp.zeros((num_envs, k, s)), actions=jnp.zeros((num_envs, k, a)),
                 cond=jnp.zeros((num_envs, k, targets.cond.shape[-1])),
                 counts=jnp.zeros((num_envs, targets.histograms.shape[-1])), achieved_sum=jnp.zeros((num_envs,)),
                 left=jnp.asarray((targets.lengths[:, None] * targets.histograms)[env_target], jnp.float32))
  return RolloutSetup(settings, n_ep, features, inputs, carry, env_target)


def evaluate_policy(policy, targets: Targets, config, rng) -> EvalResult:
  """Rolls out every target x episode in parallel on Brax and scores the achieved feature histograms.

  `policy` is a `gdt.checkpoint.LoadedPolicy`; `targets` must carry the policy's own labels; `config` is the
  run's eval block (EVAL_KEYS). Episode length = the target's length, or until the env is done. Each target plays
  in its task's env (`targets.task_specs`: env, env_kwargs, backend, from the dataset's metadata; the policy's env
  for targets without a task), one batched rollout per task; the result lists the targets in their given order.
  """
  setup = prepare_rollout(policy, targets, config)
  settings = setup.settings
  t_max = targets.max_length
  merged: dict[str, np.ndarray] = {}
  steps, compile_s, run_s, per_task = 0, 0.0, 0.0, {}
  groups = targets.task_groups()
  for i, (task, idx) in enumerate(groups):
    whole = len(groups) == 1
    sub = targets if whole else targets.select(idx)
    sub_setup = setup if whole else prepare_rollout(policy, sub, config)
    spec = dict(env=policy.env, backend=policy.backend) if task is None else targets.task_specs[task]
    sub_t = sub.max_length
    chunk = int(min(settings["chunk_steps"], sub_t))
    env, run_chunk = _rollout_fns(
        policy.model, spec["env"], spec.get("backend") or policy.backend, int(policy.context_length),
        targets.labels.conditioning, settings["schedule"], setup.features, bool(settings["xvel_offset_like_gdt"]),
        chunk, tuple(sorted((spec.get("env_kwargs") or {}).items())))
    key = rng if whole else jax.random.fold_in(rng, i)  # one task: the keys of a single rollout
    state = rollout.init_state(env, key, sub.lengths[sub_setup.env_target], sub_setup.carry)
    res = rollout.run(run_chunk, sub_setup.inputs, state, sub_t, chunk, key,
                      label=f"[eval{'' if task is None else ' ' + task}] ")
    rows = (idx[:, None] * setup.episodes + np.arange(setup.episodes)[None]).ravel()  # this task's envs in E
    for name, x in res.outputs.items():
      x = np.asarray(x)
      if name not in merged:
        merged[name] = np.zeros((len(setup.env_target), t_max) + x.shape[2:], x.dtype)
      merged[name][rows, :x.shape[1]] = x
    steps, compile_s, run_s = max(steps, res.steps), compile_s + res.compile_s, run_s + res.run_s
    if task is not None:
      per_task[task] = dict(spec, targets=len(idx), env_steps=int(np.asarray(res.outputs["valid"]).sum()))
  result = score_rollout(policy, targets, setup, merged, steps, compile_s, run_s)
  if not per_task:
    return result
  return dataclasses.replace(result, protocol=dict(result.protocol, tasks=per_task))


def normalized_return(returns, reference: tuple[float, float]):
  """D4RL's normalised score: 100 (return - random) / (expert - random), `reference` = (random, expert) returns."""
  random, expert = reference
  return 100.0 * (np.asarray(returns, np.float64) - random) / (expert - random)


# policy.backend -> fn(policy, targets, eval_config, rng) -> EvalResult: every Brax backend of gdt.envs here;
# gdt.gym_eval registers the Gymnasium MuJoCo ones (D4RL / Minari data).
EVALUATORS: Registry[Callable[..., EvalResult]] = Registry("evaluation backend")
for _backend in sorted({b for name in gdt_envs.registered_names() for b in gdt_envs.offered_backends(name)}):
  EVALUATORS.register(_backend, evaluate_policy)


def score_rollout(policy, targets: Targets, setup: RolloutSetup, outputs: Mapping[str, np.ndarray], steps: int,
                  compile_s: float, run_s: float, reference: tuple[float, float] | None = None) -> EvalResult:
  """The EvalResult of a finished rollout: `outputs` are `observe`'s plus 'valid', each [E, T, ...] (zero and
  invalid past `steps`); rows and aggregates per target, the protocol with its timing. With `reference` (random,
  expert) returns, rows and aggregates also hold `normalized_return` (`normalized_return`)."""
  settings, n_ep, m = setup.settings, setup.episodes, targets.num_targets
  labels = targets.labels

  def per_target(x):  # [E, T, ...] -> [M, n, T, ...]
    return np.asarray(x).reshape((m, n_ep) + x.shape[1:])

  valid = per_target(outputs["valid"]).astype(bool)
  rewards = per_target(outputs["rewards"])
  feats = per_target(outputs["features"])
  slots = m * n_ep * steps
  protocol = dict(settings, episodes_per_target=n_ep, compile_s=compile_s, run_s=run_s,
                  env_steps=int(valid.sum()), env_slots=slots, env_steps_per_s=slots / run_s,
                  backend=policy.backend, env=policy.env)
  print(f"[eval] {policy.env}/{labels.conditioning}/{settings['schedule']}: {m} targets x {n_ep} episodes x "
        f"{steps} steps = {slots:,} env steps in {run_s:.1f}s "
        f"({slots / run_s:,.0f} env steps/s incl. model; compile {compile_s:.1f}s)", flush=True)

  feature_arrays, achieved, rows = {}, {}, [dict() for _ in range(m)]
  returns = rewards.sum(-1)  # [M, n]
  lengths = valid.sum(-1)
  for i, (name, edges, target_hist) in enumerate(targets.score_features):
    feature_arrays[name] = feats[..., i]
    achieved[name] = histograms(feats[..., i], valid, edges)
    centers = np.asarray(hindsight.bin_centers(edges))
    w1 = np.asarray(metrics.wasserstein_1d(target_hist, achieved[name], centers))
    # Where the rollouts sit, beside how far their distribution is: the achieved mean over every valid step, and
    # the target histogram's mean (bin centres).
    achieved_mean = (feats[..., i] * valid).sum((1, 2)) / np.maximum(valid.sum((1, 2)), 1)
    target_mean = np.asarray(target_hist, np.float64) @ centers
    for j in range(m):
      rows[j][_w1_key(name, targets)] = float(w1[j])
      rows[j][f"mean_{name}"] = float(achieved_mean[j])
      rows[j][f"target_mean_{name}"] = float(target_mean[j])
  for j in range(m):
    rows[j] = {"name": targets.names[j], **rows[j], "mean_return": float(returns[j].mean()),
               "std_return": float(returns[j].std()), "mean_length": float(lengths[j].mean()),
               "target_return": float(targets.returns[j])}
    if targets.tasks:
      rows[j]["task"] = targets.tasks[j]
    if targets.mixture_weights is not None and np.isfinite(targets.mixture_weights[j]):
      rows[j]["mixture_weight"] = float(targets.mixture_weights[j])
    if reference is not None:
      rows[j].update(normalized_return=float(normalized_return(returns[j], reference).mean()),
                     std_normalized_return=float(normalized_return(returns[j], reference).std()),
                     target_normalized_return=float(normalized_return(targets.returns[j], reference)))
  return EvalResult(
      targets=targets, rows=tuple(rows), aggregates=_aggregate(rows), features=feature_arrays,
      achieved_histograms=achieved, valid=valid, rewards=rewards, actions=per_target(outputs["actions"]),
      observations=per_target(outputs["observations"]), protocol=protocol)


def _group_rows(rows: Sequence[Mapping], group: str) -> list[Mapping]:
  """The rows of `group`: 'all', a GROUPS prefix (best/middle/twin), 'mix' (every mixture target), 'mix<w>' (the
  mixture targets of weight w) or 'task=<label>' (the trajectory targets of one task: those with a return)."""
  if group == "all":
    return list(rows)
  if group == "mix":
    return [r for r in rows if "mixture_weight" in r]
  if group.startswith("task="):
    return [r for r in rows if r.get("task") == group[5:] and _is_trajectory(r)]
  return [r for r in rows if r["name"].startswith(group + "_")]


def _is_trajectory(row: Mapping) -> bool:
  """A held-out trajectory's row; synthetic targets (mixtures, twins) have no return."""
  return "mixture_weight" not in row and np.isfinite(row["target_return"])


def _groups(rows: Sequence[Mapping]) -> list[str]:
  """best, middle; per task when the trajectory targets span several; mix and per mixture weight; all."""
  out = list(GROUPS)
  tasks = list(dict.fromkeys(r["task"] for r in rows if "task" in r and _is_trajectory(r)))
  if len(tasks) > 1:
    out += [f"task={t}" for t in tasks]
  weights = list(dict.fromkeys(r["mixture_weight"] for r in rows if "mixture_weight" in r))
  if weights:
    out += ["mix"] + [f"mix{w:g}" for w in weights]
  return out + ["all"]


def _aggregate(rows: Sequence[Mapping]) -> dict:
  """Means of every W1 column, of mean_return, of the achieved and target feature means (mean_<feature>,
  target_mean_<feature>) and of normalized_return (if any) over the best / middle / all targets (and per task, per
  mixture weight: `_groups`), e.g. 'w1_best', 'w1_mix0.5', 'w1_task=cheetah_backflip', 'mean_x_velocity_best'."""
  keys = [k for k in rows[0] if k.startswith(("w1", "mean_", "target_mean_")) and k != "mean_length"
          or k == "normalized_return"]
  out = {}
  for group in _groups(rows):
    selected = _group_rows(rows, group)
    if not selected:
      continue
    for key in keys:
      out[f"{key}_{group}"] = float(np.mean([r[key] for r in selected]))
  return out


def markdown_table(results_by_method: Mapping[str, EvalResult]) -> str:
  """Targets x methods: W1 (3 decimals) and mean return, plus mean best / mean middle / mean all rows."""
  methods = list(results_by_method)
  names = []
  for result in results_by_method.values():
    names += [r["name"] for r in result.rows if r["name"] not in names]
  header = "| target | " + " | ".join(f"{m} W1 | {m} return" for m in methods) + " |"
  lines = [header, "|" + "---|" * (1 + 2 * len(methods))]

  def cells(rows_of_method):
    return [f"{np.mean([r['w1'] for r in rs]):.3f} | {np.mean([r['mean_return'] for r in rs]):.1f}" if rs else "- | -"
            for rs in rows_of_method]

  for name in names:
    per = [[r for r in res.rows if r["name"] == name] for res in results_by_method.values()]
    lines.append(f"| {name} | " + " | ".join(cells(per)) + " |")
  groups = list(dict.fromkeys(g for res in results_by_method.values() for g in _groups(res.rows)))
  for group in groups:
    per = [_group_rows(res.rows, group) for res in results_by_method.values()]
    if any(per):
      lines.append(f"| mean {group} | " + " | ".join(cells(per)) + " |")
  return "\n".join(lines) + "\n"
