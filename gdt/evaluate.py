"""Evaluation of GDT policies: targets, conditioning schedules, batched Brax rollouts, W1 metrics.

Every (target, episode) pair is rolled out in parallel in one jit'd `lax.scan` over a vmapped Brax
env, with a fixed-size K-step context buffer (roll left, write the newest step). The scan is run in
chunks of `chunk_steps` steps so that long evaluations print progress; the carry stays on device.

Fidelity switches (gdt_reference §2.6, §4, §8):
- `schedule='open_loop'` is the reference's time-indexed conditioning (the target's own h_t or future
  sum at the same t); `closed_loop` updates it from what the rollout achieved (DT's RTG decrement).
- `xvel_offset_like_gdt=True` records state features of the next state s_{t+1}, as `eval_cdt.py` did;
  the default records the state s_t the policy acted in, which is what the target histogram uses.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gdt import envs as gdt_envs
from gdt import hindsight
from gdt import metrics
from gdt.registry import Registry
from gdt.workdir import Progress, atomic_write_bytes, config_to_dict

# Keys of the eval config (`config.eval` in the experiment configs) and their defaults.
EVAL_DEFAULTS = {
    "episodes_per_target": 20,
    "schedule": "open_loop",
    "xvel_offset_like_gdt": False,
    "chunk_steps": 100,
    "plots": True,
}

GROUPS = ("best", "middle")  # target-name prefixes that get their own mean (plus "all")


# ----------------------------------------------------------------------------------------------
# Targets


def split_targets(trajs, best_k: int = 5, middle_k: int = 5) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Holds out the best-k and middle-k trajectories by return (gdt_reference §2.6).

  Returns (train_indices [N-M], target_indices [M], names [M]): `best_traj_i` has the i-th highest
  return; `middle_traj_i` has rank floor(N/2) - floor(k/2) + i in ascending order of return.
  """
  returns = np.asarray(trajs.returns())
  n = len(returns)
  order = np.argsort(returns, kind="stable")
  best = order[::-1][:best_k]
  start = n // 2 - middle_k // 2
  middle = order[start:start + middle_k]
  target = np.concatenate([best, middle]).astype(np.int64)
  if len(set(target.tolist())) != best_k + middle_k or start < 0:
    raise ValueError(f"{n} trajectories are too few for {best_k} best and {middle_k} middle disjoint targets")
  names = [f"best_traj_{i}" for i in range(best_k)] + [f"middle_traj_{i}" for i in range(middle_k)]
  train = np.setdiff1d(np.arange(n), target)
  return train, target, names


@dataclasses.dataclass(frozen=True)
class Targets:
  """M evaluation targets and the per-step conditioning of their open-loop schedule.

  `features` maps every scored feature (the conditioning feature first) to its target histograms;
  `edges` are the conditioning feature's bin edges [B+1]. T = max length.
  """
  names: tuple[str, ...]
  feature: str
  conditioning: str
  edges: np.ndarray  # [B+1]
  values: np.ndarray  # [M, T] conditioning-feature values of the target (zeros for synthetic targets)
  lengths: np.ndarray  # [M] int
  histograms: np.ndarray  # [M, B] whole-target histogram (= h_0)
  cond: np.ndarray  # [M, T, C] open-loop conditioning (histogram: h_t; rtg: scaled future sum; none: 0)
  totals: np.ndarray  # [M] target feature sum (the closed-loop rtg budget)
  returns: np.ndarray  # [M] target returns (nan for synthetic targets)
  demo_states: np.ndarray | None  # [M, T, S] raw demo states (BDT), else None
  score_features: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # (name, edges [B+1], hist [M,B])
  rtg_scale: float = hindsight.DEFAULT_RTG_SCALE  # z = future sum / rtg_scale
  gamma: float = 1.0

  @property
  def num_targets(self) -> int:
    return len(self.names)

  @property
  def max_length(self) -> int:
    return int(self.lengths.max())


def _histograms(values: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """[M, ...] values and mask -> [M, B] normalised histograms over each row's masked entries."""
  return np.stack([np.asarray(metrics.histogram(np.ravel(v), edges, mask=np.ravel(m))) for v, m in zip(values, mask, strict=True)])


def open_loop_cond(values: np.ndarray, mask: np.ndarray, edges: np.ndarray, conditioning: str, rtg_scale: float,
                   gamma: float) -> np.ndarray:
  """The target's own hindsight labels z_t [M,T,C] (what training relabels): h_t, scaled future sum, or zeros."""
  aggregator = hindsight.CONDITIONING_LABELS.get(conditioning).aggregator
  if aggregator is None:  # BC's constant z, or BDT's encoder reading demo states
    return np.zeros(values.shape + (1,), np.float32)
  z = hindsight.AGGREGATORS.get(aggregator)(values, mask, gamma=gamma, edges=edges, rtg_scale=rtg_scale)
  return np.asarray(z, np.float32)


def _dataset_edges(trajs, feature: str, num_bins: int) -> np.ndarray:
  """Bins over every step of every trajectory (gdt_reference §2.2; targets included)."""
  values = hindsight.feature_values(trajs, feature)
  return np.asarray(hindsight.bin_edges(values, trajs.mask(), num_bins))


def trajectory_targets(trajs, indices, names, feature: str, edges, conditioning: str,
                       rtg_scale: float = hindsight.DEFAULT_RTG_SCALE,
                       gamma: float = 1.0, score_features: Sequence[str] = (), num_bins: int = 30) -> Targets:
  """Targets from held-out dataset trajectories (best/middle).

  `edges` [B+1] are the conditioning feature's bins (None: computed over the whole dataset `trajs`,
  num_bins bins). `score_features` are extra features to score (e.g. BDT's reward and x_velocity),
  each binned over the whole dataset. `cond [M,T,C]` is the open-loop schedule of `conditioning`.
  """
  indices = np.asarray(indices)
  if edges is None:
    edges = _dataset_edges(trajs, feature, num_bins)
  edges = np.asarray(edges, np.float32)
  sel = trajs.select(indices)
  mask = sel.mask()
  values = np.asarray(hindsight.feature_values(sel, feature), np.float32) * mask
  lengths = np.asarray(sel.lengths, np.int32)
  histograms = _histograms(values, mask, edges)
  cond = open_loop_cond(values, mask, edges, conditioning, rtg_scale, gamma)
  reads_demo = hindsight.CONDITIONING_LABELS.get(conditioning).encoder_window  # BDT: demo states for the encoder
  scored = [(feature, edges, histograms)]
  for name in score_features:
    if name == feature:
      continue
    f_edges = _dataset_edges(trajs, name, len(edges) - 1)
    f_values = np.asarray(hindsight.feature_values(sel, name), np.float32)
    scored.append((name, f_edges.astype(np.float32), _histograms(f_values, mask, f_edges)))
  return Targets(
      names=tuple(names), feature=feature, conditioning=conditioning, edges=edges, values=values,
      lengths=lengths, histograms=histograms, cond=cond, totals=values.sum(-1),
      returns=np.asarray(sel.returns(), np.float32),
      demo_states=np.asarray(sel.observations, np.float32) if reads_demo else None,
      score_features=tuple(scored), rtg_scale=float(rtg_scale), gamma=float(gamma))


def mixture_histogram(h1, h2, w: float = 0.5) -> np.ndarray:
  """w * h1 + (1 - w) * h2, renormalised ([..., B]); e.g. a bimodal forward/backflip target."""
  h = w * np.asarray(h1, np.float64) + (1.0 - w) * np.asarray(h2, np.float64)
  return (h / h.sum(-1, keepdims=True)).astype(np.float32)


def synthetic_targets(histograms, names, edges, length: int, feature: str = "reward", conditioning: str = "histogram",
                      rtg_scale: float = hindsight.DEFAULT_RTG_SCALE) -> Targets:
  """Targets given only as distributions p* [M, B] over `edges` [B+1], rolled out for `length` steps.

  There is no per-step h_t: the open-loop schedule feeds p* at every step (histogram), or the expected
  future sum (length - t) * E_p*[phi] / rtg_scale (rtg); closed_loop updates from what was achieved.
  """
  p = np.asarray(histograms, np.float32)
  p = p / p.sum(-1, keepdims=True)
  edges = np.asarray(edges, np.float32)
  m, b = p.shape
  if len(edges) != b + 1:
    raise ValueError(f"synthetic histograms have {b} bins but edges define {len(edges) - 1}")
  if conditioning == "anticausal":
    raise ValueError("BDT ('anticausal') is conditioned on demonstration states; synthetic targets have none")
  mean = p @ np.asarray(hindsight.bin_centers(edges))  # [M]
  steps_left = (length - np.arange(length)).astype(np.float32)  # [T]
  cond_by_kind = {
      "histogram": np.broadcast_to(p[:, None, :], (m, length, b)),
      "rtg": (mean[:, None] * steps_left[None, :] / rtg_scale)[..., None],
      "none": np.zeros((m, length, 1), np.float32),
  }
  if conditioning not in cond_by_kind:
    raise KeyError(f"unknown conditioning {conditioning!r}; expected one of {sorted(cond_by_kind)}")
  return Targets(
      names=tuple(names), feature=feature, conditioning=conditioning, edges=edges,
      values=np.zeros((m, length), np.float32), lengths=np.full((m,), length, np.int32), histograms=p,
      cond=np.ascontiguousarray(cond_by_kind[conditioning], np.float32), totals=(mean * length).astype(np.float32),
      returns=np.full((m,), np.nan, np.float32), demo_states=None, score_features=((feature, edges, p),),
      rtg_scale=float(rtg_scale), gamma=1.0)


# ----------------------------------------------------------------------------------------------
# Conditioning schedules (pure jnp; E = number of parallel envs)


class ScheduleStep(NamedTuple):
  """What a schedule may read at rollout step t (per env)."""
  t: jax.Array  # [] int
  precomputed: jax.Array  # [E, C] the target's open-loop conditioning at index t
  histogram: jax.Array  # [E, B] target distribution p*
  length: jax.Array  # [E] target length T
  total: jax.Array  # [E] target feature sum
  counts: jax.Array  # [E, B] bin counts of the feature achieved at steps < t
  achieved_sum: jax.Array  # [E] feature sum achieved at steps < t
  rtg_scale: float


def closed_loop_histogram(histogram: jax.Array, length: jax.Array, counts: jax.Array) -> jax.Array:
  """normalise(max(0, T p* - counts)); p* once the target's mass is used up. [E,B],[E],[E,B] -> [E,B]."""
  left = jnp.maximum(0.0, length[..., None] * histogram - counts)
  mass = left.sum(-1, keepdims=True)
  return jnp.where(mass > 0, left / jnp.where(mass > 0, mass, 1.0), histogram)


def closed_loop_rtg(total: jax.Array, achieved_sum: jax.Array, rtg_scale: float) -> jax.Array:
  """(target sum - achieved sum) / rtg_scale: DT's "subtract the received reward". [E],[E] -> [E,1]."""
  return ((total - achieved_sum) / rtg_scale)[..., None]


CLOSED_LOOP = Registry("closed-loop conditioning")
CLOSED_LOOP.register("histogram", lambda s: closed_loop_histogram(s.histogram, s.length, s.counts))
CLOSED_LOOP.register("rtg", lambda s: closed_loop_rtg(s.total, s.achieved_sum, s.rtg_scale))
CLOSED_LOOP.register("none", lambda s: s.precomputed)

SCHEDULES = Registry("conditioning schedule")


@SCHEDULES.register("open_loop")
def open_loop(conditioning: str, step: ScheduleStep) -> jax.Array:
  """The reference's time-indexed schedule: the target's own h_t / future sum at the same t. -> [E,C]."""
  del conditioning
  return step.precomputed


@SCHEDULES.register("closed_loop")
def closed_loop(conditioning: str, step: ScheduleStep) -> jax.Array:
  """Updated from what was achieved so far (see `closed_loop_histogram`, `closed_loop_rtg`). -> [E,C]."""
  return CLOSED_LOOP.get(conditioning)(step)


# ----------------------------------------------------------------------------------------------
# Batched rollout


class _Carry(NamedTuple):
  env_state: Any
  alive: jax.Array  # [E] bool
  states: jax.Array  # [E, K, S] normalised
  actions: jax.Array  # [E, K, A]
  cond: jax.Array  # [E, K, C]
  counts: jax.Array  # [E, B]
  achieved_sum: jax.Array  # [E]


def _push(buffer: jax.Array, x: jax.Array) -> jax.Array:
  """Rolls a [E, K, ...] buffer left by one step and writes x [E, ...] as the newest step."""
  return jnp.concatenate([buffer[:, 1:], x[:, None]], axis=1)


def _feature_fn(name: str, env_name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """(obs [E,S], reward [E]) -> phi [E], via the hindsight feature registry (one definition of phi)."""
  fn = hindsight.FEATURES.get(name)
  metadata = {"env": env_name, "observation_layout": gdt_envs.observation_layout(env_name)}

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


@functools.lru_cache(maxsize=16)
def _rollout_fns(model, env_name: str, backend: str, context_length: int, conditioning: str, schedule: str,
                 features: tuple[str, ...], xvel_offset_like_gdt: bool, chunk_steps: int):
  """(reset, run_chunk) jit'd for one model/env/protocol; shapes of targets and batch are traced.

  reset(rng [2], num_envs) -> carry. run_chunk(params, norm, target_arrays, env_target [E], carry, t0)
  -> (carry, per-step outputs [chunk, E, ...]).
  """
  env = gdt_envs.make(env_name, backend=backend)
  k = context_length
  horizon = model.encoder_horizon
  max_t = model.max_timestep
  feature_fns = [_feature_fn(f, env_name) for f in features]
  schedule_fn = SCHEDULES.get(schedule)
  reads_demo = hindsight.CONDITIONING_LABELS.get(conditioning).encoder_window  # BDT: the encoder reads demo states

  def reset(rng, num_envs: int, cond_dim: int, num_bins: int):
    env_state = jax.vmap(env.reset)(jax.random.split(rng, num_envs))
    s, a = env.observation_size, env.action_size
    return _Carry(
        env_state=env_state, alive=jnp.ones((num_envs,), bool), states=jnp.zeros((num_envs, k, s)),
        actions=jnp.zeros((num_envs, k, a)), cond=jnp.zeros((num_envs, k, cond_dim)),
        counts=jnp.zeros((num_envs, num_bins)), achieved_sum=jnp.zeros((num_envs,)))

  def step(params, norm, tgt, env_target, carry: _Carry, t):
    mean, std = norm
    obs = carry.env_state.obs
    states = _push(carry.states, (obs - mean) / std)
    actions = _push(carry.actions, jnp.zeros_like(carry.actions[:, 0]))
    length = tgt["lengths"][env_target]
    sched = ScheduleStep(
        t=t, precomputed=tgt["cond"][env_target, jnp.minimum(t, tgt["cond"].shape[1] - 1)],
        histogram=tgt["histograms"][env_target], length=length.astype(jnp.float32), total=tgt["totals"][env_target],
        counts=carry.counts, achieved_sum=carry.achieved_sum, rtg_scale=tgt["rtg_scale"])
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
    action = model.apply({"params": params}, cond_in, states, actions, timesteps, mask, deterministic=True)[:, -1]
    actions = actions.at[:, -1].set(action)
    nxt = jax.vmap(env.step)(carry.env_state, action)
    valid = carry.alive & (t < length)
    feature_obs = nxt.obs if xvel_offset_like_gdt else obs
    phi = jnp.stack([f(feature_obs, nxt.reward) for f in feature_fns], axis=-1)  # [E, F]
    vf = valid.astype(jnp.float32)
    bins = jax.nn.one_hot(hindsight.bin_index(phi[:, 0], tgt["edges"]), tgt["histograms"].shape[-1])
    counts = carry.counts + vf[:, None] * bins
    achieved_sum = carry.achieved_sum + vf * phi[:, 0]
    frozen = jax.tree.map(
        lambda new, old: jnp.where(valid.reshape(valid.shape + (1,) * (new.ndim - 1)), new, old), nxt, carry.env_state)
    alive = valid & (nxt.done == 0)
    out = {"features": phi * vf[:, None], "rewards": nxt.reward * vf, "valid": valid, "actions": action,
           "observations": obs}
    return _Carry(frozen, alive, states, actions, cond_buf, counts, achieved_sum), out

  def run_chunk(params, norm, tgt, env_target, carry, t0):
    ts = t0 + jnp.arange(chunk_steps)
    return jax.lax.scan(lambda c, t: step(params, norm, tgt, env_target, c, t), carry, ts)

  return jax.jit(reset, static_argnums=(1, 2, 3)), jax.jit(run_chunk)


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """Per-target metrics, aggregates and the raw rollout arrays ([M, episodes, T] unless noted)."""
  targets: Targets
  rows: tuple[dict, ...]  # per target: name, w1 (+ w1_<feature> for extra scored features), returns, length
  aggregates: dict  # {w1, w1_<feature>, mean_return}_{best, middle, all}
  features: dict  # scored feature name -> [M, n, T] achieved values (0 where invalid)
  achieved_histograms: dict  # scored feature name -> [M, B]
  valid: np.ndarray  # [M, n, T] bool
  rewards: np.ndarray  # [M, n, T]
  actions: np.ndarray  # [M, n, T, A]
  observations: np.ndarray  # [M, n, T, S] the states the policy acted in
  protocol: dict  # schedule, episodes, offset flag, timing (compile_s, run_s, env_steps_per_s)

  def write(self, workdir: str, prefix: str) -> dict[str, str]:
    """Writes eval_<prefix>.npz (raw features, masks, rewards, target histograms, edges), .json, PNG plots."""
    from gdt import plots
    os.makedirs(workdir, exist_ok=True)
    base = os.path.join(workdir, f"eval_{prefix}")
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
    paths = {"npz": base + ".npz", "json": base + ".json"}
    if self.protocol.get("plots", True):
      for name, edges, hist in self.targets.score_features:
        path = f"{base}_{name}.png"
        plots.histogram_grid(path, self.targets.names, edges, hist, self.achieved_histograms[name],
                             title=f"{prefix}: {name}", w1=[r[_w1_key(name, self.targets)] for r in self.rows])
        paths[f"png_{name}"] = path
    return paths


def _w1_key(feature: str, targets: Targets) -> str:
  return "w1" if feature == targets.feature else f"w1_{feature}"


def _eval_settings(config) -> dict:
  if config is None:
    return dict(EVAL_DEFAULTS)
  cfg = config_to_dict(config)
  return {key: cfg.get(key, default) for key, default in EVAL_DEFAULTS.items()}


def evaluate_policy(policy, targets: Targets, config, rng) -> EvalResult:
  """Rolls out every target x episode in parallel and scores the achieved feature histograms.

  `policy` is a `gdt.checkpoint.LoadedPolicy`; `config` a mapping with EVAL_DEFAULTS' keys (missing
  keys take the defaults). Episode length = the target's length, or until the env is done.
  """
  settings = _eval_settings(config)
  if policy.conditioning != targets.conditioning:
    raise ValueError(f"policy conditioning {policy.conditioning!r} != targets conditioning {targets.conditioning!r}")
  if settings["schedule"] == "closed_loop" and targets.conditioning == "rtg" and targets.gamma != 1.0:
    raise ValueError("the closed-loop rtg schedule subtracts undiscounted sums: it needs gamma == 1")
  n_ep = int(settings["episodes_per_target"])
  m, t_max = targets.num_targets, targets.max_length
  num_envs = m * n_ep
  chunk = int(min(settings["chunk_steps"], t_max))
  features = tuple(name for name, _, _ in targets.score_features)
  reset, run_chunk = _rollout_fns(
      policy.model, policy.env, policy.backend, int(policy.context_length), targets.conditioning,
      settings["schedule"], features, bool(settings["xvel_offset_like_gdt"]), chunk)
  mean = jnp.asarray(policy.state_mean, jnp.float32)
  std = jnp.asarray(policy.state_std, jnp.float32)
  tgt = {"cond": jnp.asarray(targets.cond), "histograms": jnp.asarray(targets.histograms),
         "lengths": jnp.asarray(targets.lengths, jnp.int32), "totals": jnp.asarray(targets.totals),
         "edges": jnp.asarray(targets.edges), "rtg_scale": jnp.float32(targets.rtg_scale)}
  if targets.demo_states is not None:
    valid_demo = np.arange(targets.demo_states.shape[1])[None] < targets.lengths[:, None]
    tgt["demo_states_norm"] = jnp.asarray(
        (targets.demo_states - np.asarray(policy.state_mean)) / np.asarray(policy.state_std) * valid_demo[..., None],
        jnp.float32)
  env_target = jnp.repeat(jnp.arange(m), n_ep)
  params = policy.params

  t_start = time.perf_counter()
  carry = reset(rng, num_envs, targets.cond.shape[-1], targets.histograms.shape[-1])
  compiled = run_chunk.lower(params, (mean, std), tgt, env_target, carry, jnp.int32(0)).compile()
  compile_s = time.perf_counter() - t_start
  progress = Progress(t_max * num_envs, unit="env steps", label="[eval] ")
  t_run = time.perf_counter()
  outs = []
  for t0 in range(0, t_max, chunk):
    carry, out = compiled(params, (mean, std), tgt, env_target, carry, jnp.int32(t0))
    outs.append(jax.device_get(out))
    if t_max > chunk:
      progress.report(min(t0 + chunk, t_max) * num_envs, {"alive": carry.alive.mean()})
    if not bool(carry.alive.any()):
      break
  run_s = time.perf_counter() - t_run
  raw = {key: np.concatenate([o[key] for o in outs], axis=0)[:t_max] for key in outs[0]}
  steps = raw["valid"].shape[0]

  def per_target(x):  # [T', E, ...] -> [M, n, T, ...] padded with zeros to t_max
    x = np.moveaxis(x, 0, 1).reshape((m, n_ep, steps) + x.shape[2:])
    pad = [(0, 0), (0, 0), (0, t_max - steps)] + [(0, 0)] * (x.ndim - 3)
    return np.pad(x, pad)

  valid = per_target(raw["valid"]).astype(bool)
  rewards = per_target(raw["rewards"])
  feats = per_target(raw["features"])
  env_steps = int(valid.sum())
  protocol = dict(settings, episodes_per_target=n_ep, compile_s=compile_s, run_s=run_s, env_steps=env_steps,
                  env_slots=num_envs * steps, env_steps_per_s=num_envs * steps / run_s, backend=policy.backend,
                  env=policy.env)
  print(f"[eval] {policy.env}/{policy.conditioning}/{settings['schedule']}: {m} targets x {n_ep} episodes x "
        f"{steps} steps = {num_envs * steps:,} env steps in {run_s:.1f}s "
        f"({num_envs * steps / run_s:,.0f} env steps/s incl. model; compile {compile_s:.1f}s)", flush=True)

  feature_arrays, achieved, rows = {}, {}, [dict() for _ in range(m)]
  returns = rewards.sum(-1)  # [M, n]
  lengths = valid.sum(-1)
  for i, (name, edges, target_hist) in enumerate(targets.score_features):
    feature_arrays[name] = feats[..., i]
    achieved[name] = _histograms(feats[..., i], valid, edges)
    w1 = np.asarray(metrics.wasserstein_1d(target_hist, achieved[name], np.asarray(hindsight.bin_centers(edges))))
    for j in range(m):
      rows[j][_w1_key(name, targets)] = float(w1[j])
  for j in range(m):
    rows[j] = {"name": targets.names[j], **rows[j], "mean_return": float(returns[j].mean()),
               "std_return": float(returns[j].std()), "mean_length": float(lengths[j].mean()),
               "target_return": float(targets.returns[j])}
  return EvalResult(
      targets=targets, rows=tuple(rows), aggregates=_aggregate(rows), features=feature_arrays,
      achieved_histograms=achieved, valid=valid, rewards=rewards, actions=per_target(raw["actions"]),
      observations=per_target(raw["observations"]), protocol=protocol)


def _group_rows(rows: Sequence[Mapping], group: str) -> list[Mapping]:
  return list(rows) if group == "all" else [r for r in rows if r["name"].startswith(group + "_")]


def _aggregate(rows: Sequence[Mapping]) -> dict:
  """Means of every W1 column and of mean_return over the best / middle / all targets."""
  keys = [k for k in rows[0] if k.startswith("w1")] + ["mean_return"]
  out = {}
  for group in GROUPS + ("all",):
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
  for group in GROUPS + ("all",):
    per = [_group_rows(res.rows, group) for res in results_by_method.values()]
    if any(per):
      lines.append(f"| mean {group} | " + " | ".join(cells(per)) + " |")
  return "\n".join(lines) + "\n"
