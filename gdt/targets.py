"""Evaluation targets: held-out dataset trajectories (best-k / middle-k by return) and synthetic distributions.

A target's open-loop schedule is `Labels.relabel` of its own feature values, the same function that labels the
training data, with the run's `Labels` (read from the trained policy), so a target's z_t is exactly what training
conditioned on for that trajectory.

Every target names the task it is evaluated in (`Targets.tasks`, with `task_specs`: label -> {env, env_kwargs,
backend}): a trajectory target the task its trajectory was played in (`Trajectories.tasks`), a synthetic target the
one its builder was given. Synthetic target sets are a registry (`SYNTHETIC`), chosen by the config's
`eval.synthetic`: 'mixture' mixes, with each of `eval.mixture_weights`, the histograms of paired held-out
trajectories of two tasks (e.g. forward running and backflipping cheetahs -> bimodal x-velocity targets):

  tgts = SYNTHETIC.get("mixture")(config.eval, held_out, labels)  # held_out: trajectory_targets of both tasks
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np

from gdt import hindsight, metrics
from gdt.conditioning import Labels
from gdt.core.registry import Registry

GROUPS = ("best", "middle", "twin")  # target-name prefixes that get their own mean (plus "all")


def split_targets(trajs, best_k: int, middle_k: int, middle_quantile: float = 0.5
                  ) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Holds out the best-k and middle-k trajectories by return (gdt_reference §2.6), per task.

  Returns (train_indices [N-M], target_indices [M], names [M]): `best_traj_i` has the i-th highest
  return; `middle_traj_i` has rank floor(q N) - floor(k/2) + i in ascending order of return, q = `middle_quantile`
  (the reference's median, 0.5; a lower q picks the lower level of a task whose data mixes two). A dataset of
  several tasks (`trajs.tasks()`) holds out best-k and middle-k of each task, ranked by that task's returns (they
  are different rewards), named `best_traj_i_<task>`, in the order the tasks first appear.
  """
  tasks = np.asarray(trajs.tasks(), dtype=object)
  labels = list(dict.fromkeys(tasks.tolist()))
  if len(labels) == 1:
    return _split_one(trajs, best_k, middle_k, middle_quantile)
  train, target, names = [], [], []
  for label in labels:
    rows = np.flatnonzero(tasks == label)
    try:
      tr, tg, nm = _split_one(trajs.select(rows), best_k, middle_k, middle_quantile)
    except ValueError as e:
      raise ValueError(f"task {label!r}: {e}") from None
    train.append(rows[tr])
    target.append(rows[tg])
    names += [f"{n}_{label}" for n in nm]
  return np.sort(np.concatenate(train)), np.concatenate(target), names


def _split_one(trajs, best_k: int, middle_k: int, middle_quantile: float = 0.5
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
  returns = np.asarray(trajs.returns())
  n = len(returns)
  order = np.argsort(returns, kind="stable")
  best = order[::-1][:best_k]
  start = int(n * middle_quantile) - middle_k // 2
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

  `score_features` maps every scored feature (the conditioning feature first) to its bins and target
  histograms. T = max length.
  """
  names: tuple[str, ...]
  labels: Labels
  values: np.ndarray  # [M, T] conditioning-feature values of the target (zeros for synthetic targets)
  lengths: np.ndarray  # [M] int
  histograms: np.ndarray  # [M, B] whole-target histogram (= h_0)
  cond: np.ndarray  # [M, T, C] open-loop conditioning (labels.relabel of the target; synthetic: see below)
  totals: np.ndarray  # [M] target feature sum (the closed-loop rtg budget)
  returns: np.ndarray  # [M] target returns (nan for synthetic targets)
  demo_states: np.ndarray | None  # [M, T, S] raw demo states (BDT), else None
  score_features: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # (name, edges [B+1], hist [M,B])
  tasks: tuple[str, ...] = ()  # [M] the task each target is evaluated in (() = the policy's own env)
  task_specs: Mapping[str, dict] = dataclasses.field(default_factory=dict)  # label -> {env, env_kwargs, backend}
  mixture_weights: np.ndarray | None = None  # [M] weight of a mixture target's first part (nan: not a mixture)

  @property
  def feature(self) -> str:
    return self.labels.feature

  @property
  def conditioning(self) -> str:
    return self.labels.conditioning

  @property
  def edges(self) -> np.ndarray:
    return self.labels.edges

  @property
  def num_targets(self) -> int:
    return len(self.names)

  @property
  def max_length(self) -> int:
    return int(self.lengths.max())

  def select(self, indices) -> "Targets":
    """The targets at `indices` (ints), same T."""
    idx = np.asarray(indices, np.int64)
    return dataclasses.replace(
        self, names=tuple(self.names[i] for i in idx), values=self.values[idx], lengths=self.lengths[idx],
        histograms=self.histograms[idx], cond=self.cond[idx], totals=self.totals[idx], returns=self.returns[idx],
        demo_states=None if self.demo_states is None else self.demo_states[idx],
        score_features=tuple((n, e, h[idx]) for n, e, h in self.score_features),
        tasks=tuple(self.tasks[i] for i in idx) if self.tasks else (),
        mixture_weights=None if self.mixture_weights is None else self.mixture_weights[idx])

  def task_groups(self) -> list[tuple[str | None, np.ndarray]]:
    """(task label, target indices) per task in first-seen order; [(None, all)] when targets name no task."""
    if not self.tasks:
      return [(None, np.arange(self.num_targets))]
    tasks = np.asarray(self.tasks, dtype=object)
    return [(t, np.flatnonzero(tasks == t)) for t in dict.fromkeys(self.tasks)]


def concatenate(parts: Sequence[Targets]) -> Targets:
  """The targets of every part in order, padded to the longest T; parts share labels and scored features' bins."""
  first = parts[0]
  for p in parts[1:]:
    if not p.labels.same_as(first.labels):
      raise ValueError("concatenate: targets were built with different labels")
    if [(n, e.tolist()) for n, e, _ in p.score_features] != [(n, e.tolist()) for n, e, _ in first.score_features]:
      raise ValueError("concatenate: targets score different features or bins; score the same ones for every part")
    if (p.demo_states is None) != (first.demo_states is None):
      raise ValueError("concatenate: some targets have demo states and others not")
  t = max(p.values.shape[1] for p in parts)

  def cat(get):
    arrays = [get(p) for p in parts]
    return np.concatenate([np.pad(a, [(0, 0), (0, t - a.shape[1])] + [(0, 0)] * (a.ndim - 2)) for a in arrays])

  if any(p.tasks for p in parts) and not all(p.tasks for p in parts):
    raise ValueError("concatenate: some targets name their task and others not")
  specs = {}
  for p in parts:
    for label, spec in p.task_specs.items():
      if specs.setdefault(label, spec) != spec:
        raise ValueError(f"concatenate: task {label!r} means {specs[label]} in one part and {spec} in another")
  weights = None
  if any(p.mixture_weights is not None for p in parts):
    weights = np.concatenate([np.full(p.num_targets, np.nan, np.float32) if p.mixture_weights is None
                              else p.mixture_weights for p in parts]).astype(np.float32)
  return Targets(
      names=sum((p.names for p in parts), ()), labels=first.labels, values=cat(lambda p: p.values),
      lengths=np.concatenate([p.lengths for p in parts]), histograms=np.concatenate([p.histograms for p in parts]),
      cond=cat(lambda p: p.cond), totals=np.concatenate([p.totals for p in parts]),
      returns=np.concatenate([p.returns for p in parts]),
      demo_states=None if first.demo_states is None else cat(lambda p: p.demo_states),
      score_features=tuple((n, e, np.concatenate([p.score_features[i][2] for p in parts]))
                           for i, (n, e, _) in enumerate(first.score_features)),
      tasks=sum((p.tasks for p in parts), ()), task_specs=specs, mixture_weights=weights)


def histograms(values: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """[M, ...] values and mask -> [M, B] normalised histograms over each row's masked entries."""
  return np.stack([np.asarray(metrics.histogram(np.ravel(v), edges, mask=np.ravel(m)))
                   for v, m in zip(values, mask, strict=True)])


def feature_edges(trajs, feature: str, num_bins: int) -> np.ndarray:
  """`num_bins` equal bins over every real step of `trajs` of `feature` -> [num_bins + 1]."""
  values = hindsight.feature_values(trajs, feature)
  return np.asarray(hindsight.bin_edges(values, trajs.mask(), num_bins), np.float32)


def trajectory_targets(trajs, indices, names, labels: Labels, score_edges: Mapping[str, np.ndarray] = {}) -> Targets:
  """Targets from held-out dataset trajectories (best/middle), conditioned as `labels` says.

  `score_edges` maps extra features to score (e.g. reward besides x_velocity) to their W1 bins; give them the
  bins of the same trajectories the labels' bins came from (`gdt.train.held_out_targets` does).
  """
  sel = trajs.select(np.asarray(indices))
  mask = sel.mask()
  values = np.asarray(hindsight.feature_values(sel, labels.feature), np.float32) * mask
  hist = histograms(values, mask, labels.edges)
  scored = [(labels.feature, labels.edges, hist)]
  for name, f_edges in score_edges.items():
    if name == labels.feature:
      continue
    f_edges = np.asarray(f_edges, np.float32)
    f_values = np.asarray(hindsight.feature_values(sel, name), np.float32)
    scored.append((name, f_edges, histograms(f_values, mask, f_edges)))
  specs = sel.task_specs()
  tasks = tuple(sel.tasks())
  return Targets(
      names=tuple(names), labels=labels, values=values, lengths=np.asarray(sel.lengths, np.int32), histograms=hist,
      cond=labels.relabel(values, mask), totals=values.sum(-1), returns=np.asarray(sel.returns(), np.float32),
      demo_states=np.asarray(sel.observations, np.float32) if labels.kind.reads_demo else None,
      score_features=tuple(scored), tasks=tasks, task_specs={t: specs[t] for t in dict.fromkeys(tasks)})


def mixture_histogram(h1, h2, w: float = 0.5) -> np.ndarray:
  """w * h1 + (1 - w) * h2, renormalised ([..., B]); e.g. a bimodal forward/backflip target."""
  h = w * np.asarray(h1, np.float64) + (1.0 - w) * np.asarray(h2, np.float64)
  return (h / h.sum(-1, keepdims=True)).astype(np.float32)


def synthetic_targets(hists, names, labels: Labels, length: int, task: str | None = None,
                      task_spec: dict | None = None, mixture_weights=None, means=None) -> Targets:
  """Targets given only as distributions p* [M, B] over `labels.edges`, rolled out for `length` steps (in `task`,
  built as `task_spec` says; None: the policy's own env).

  There is no per-step h_t: the open-loop schedule is the conditioning kind's `synthetic` schedule (CDT: p* at
  every step; DT: the expected future sum (length - t) E_p*[phi] / rtg_scale, the only thing it can condition on);
  closed_loop updates from what was achieved. E_p*[phi] is over the bin centres unless `means` [M] gives it.
  """
  p = np.asarray(hists, np.float32)
  p = p / p.sum(-1, keepdims=True)
  m, b = p.shape
  if b != labels.num_bins:
    raise ValueError(f"synthetic histograms have {b} bins but the labels' edges define {labels.num_bins}")
  mean = p @ np.asarray(hindsight.bin_centers(labels.edges)) if means is None else np.asarray(means, np.float32)
  steps_left = (length - np.arange(length)).astype(np.float32)  # [T]
  cond = labels.kind.synthetic(p, mean, steps_left, labels.rtg_scale)
  return Targets(
      names=tuple(names), labels=labels, values=np.zeros((m, length), np.float32),
      lengths=np.full((m,), length, np.int32), histograms=p, cond=np.ascontiguousarray(cond, np.float32),
      totals=(mean * length).astype(np.float32), returns=np.full((m,), np.nan, np.float32), demo_states=None,
      score_features=((labels.feature, labels.edges, p),), tasks=(task,) * m if task else (),
      task_specs={task: dict(task_spec)} if task else {},
      mixture_weights=None if mixture_weights is None else np.asarray(mixture_weights, np.float32))


# eval.synthetic name -> fn(eval config, held-out trajectory Targets (tasks labelled), labels) -> synthetic Targets
SYNTHETIC: Registry[Callable[..., Targets]] = Registry("synthetic target set")


def mixture_parts(eval_config, tasks: Sequence[str]) -> tuple[str, str, str]:
  """(first task, second task, rollout task) of `eval.mixture_tasks` / `eval.synthetic_task` among the data's
  `tasks`; defaults: the first two tasks, rolled out in the first. Raises ValueError naming the field."""
  present = list(dict.fromkeys(tasks))
  chosen = list(eval_config.mixture_tasks) or present[:2]
  if len(chosen) != 2 or chosen[0] == chosen[1] or not set(chosen) <= set(present):
    raise ValueError(f"eval.mixture_tasks: a mixture needs two distinct tasks of the data, got {list(chosen)} "
                     f"(tasks in the data: {present}; train on several with extra_datasets)")
  rollout_task = eval_config.synthetic_task or chosen[0]
  if rollout_task not in present:
    raise ValueError(f"eval.synthetic_task: {rollout_task!r} is not a task of the data ({present})")
  return chosen[0], chosen[1], rollout_task


@SYNTHETIC.register("mixture")
def mixture_targets(eval_config, held_out: Targets, labels: Labels) -> Targets:
  """For each weight w of `eval.mixture_weights` and each pair i of held-out targets (the i-th of the first task
  with the i-th of the second: best with best, middle with middle), the target w h_i(first) + (1 - w) h_i(second)
  of the conditioning feature, named `mix<w>_<i>`, `min` of the pair's lengths long, rolled out in
  `eval.synthetic_task`."""
  first, second, rollout_task = mixture_parts(eval_config, held_out.tasks)
  tasks = np.asarray(held_out.tasks, dtype=object)
  a, b = np.flatnonzero(tasks == first), np.flatnonzero(tasks == second)
  pairs = min(len(a), len(b))
  hists, names, weights, lengths = [], [], [], []
  for w in eval_config.mixture_weights:
    for i in range(pairs):
      hists.append(mixture_histogram(held_out.histograms[a[i]], held_out.histograms[b[i]], float(w)))
      names.append(f"mix{float(w):g}_{i}")
      weights.append(float(w))
      lengths.append(min(held_out.lengths[a[i]], held_out.lengths[b[i]]))
  # one length for all (a synthetic target has no per-step schedule to pad); the pairs' shortest
  return synthetic_targets(np.stack(hists), names, labels, int(min(lengths)), rollout_task,
                           held_out.task_specs[rollout_task], weights)


def twin_task(eval_config, tasks: Sequence[str]) -> str:
  """The task whose middle held-out targets get twins: `eval.twin_task`, '' = the first mixture task. Raises
  ValueError naming the field."""
  first, _, _ = mixture_parts(eval_config, tasks)
  chosen = eval_config.get("twin_task", "") or first
  if chosen not in tasks:
    raise ValueError(f"eval.twin_task: {chosen!r} is not a task of the data ({list(dict.fromkeys(tasks))})")
  return chosen


@SYNTHETIC.register("twin")
def twin_targets(eval_config, held_out: Targets, labels: Labels) -> Targets:
  """A bimodal twin of each middle held-out target r of `eval.twin_task` (default: the first task), one per pair i
  (the i-th best target of the first task with the i-th best of the second): the mixture w h_i(first) + (1 - w)
  h_i(second) whose mean is r's, named `twin_<i>_<r's name>`, r's length long, rolled out in `eval.synthetic_task`.
  Its expected future sum is set to r's exact sum, so DT's conditioning is the same for r and its twin at the first
  step and, under the closed loop, depends on the target through that sum only: a return-conditioned policy's
  rollouts on the two have one distribution (when r's task and the rollout task share their dynamics, as the cheetah
  tasks do), and its mean W1 over the pair is at least half the W1 between them (in expectation: the two are rolled
  out from different resets). A middle target whose mean does not lie between the pair's has no twin with that
  pair."""
  first, second, rollout_task = mixture_parts(eval_config, held_out.tasks)
  reference = twin_task(eval_config, held_out.tasks)
  tasks, names = np.asarray(held_out.tasks, dtype=object), held_out.names
  best = [np.flatnonzero((tasks == task) & np.char.startswith(np.asarray(names, str), "best_"))
          for task in (first, second)]
  refs = np.flatnonzero((tasks == reference) & np.char.startswith(np.asarray(names, str), "middle_"))
  centers = np.asarray(hindsight.bin_centers(labels.edges), np.float64)
  means = held_out.histograms.astype(np.float64) @ centers
  hists, out_names, ref_means, lengths = [], [], [], []
  for r in refs:
    for i in range(min(len(best[0]), len(best[1]))):
      a, b = best[0][i], best[1][i]
      if means[a] == means[b]:
        continue
      w = (means[r] - means[b]) / (means[a] - means[b])
      if not 0.0 < w < 1.0:
        continue
      hists.append(mixture_histogram(held_out.histograms[a], held_out.histograms[b], float(w)))
      out_names.append(f"twin_{i}_{names[r]}")
      ref_means.append(held_out.totals[r] / held_out.lengths[r])
      lengths.append(held_out.lengths[r])
  if not hists:
    raise ValueError(f"eval.synthetic: 'twin' found no middle target of task {reference!r} whose {labels.feature} mean "
                     f"lies between its best targets' and task {second!r}'s ({len(refs)} middle targets; hold some "
                     "out with eval.middle_k, at a lower eval.middle_quantile to reach a lower level)")
  return concatenate([synthetic_targets(h[None], [n], labels, int(t), rollout_task,
                                         held_out.task_specs[rollout_task], means=[m])
                       for h, n, m, t in zip(hists, out_names, ref_means, lengths, strict=True)])
