"""MxT behaviour distillation, read as a pipeline: datasets -> rendered tokens -> uniform multi-task sampler ->
model -> core trainer -> per-env evaluation -> tables (mxt_reference 5.3-5.5).

- Data: one `morphology.data.MxtDataset` per env (raw state), collected once from its expert when an experts root
  is configured, rendered under the model's observation config (`data.render_dataset`); a dataset rendered under
  another config is refused naming both (`models.check_observation_config`).
- Sampling: env uniform, then transition uniform within that env (the reference concatenated all envs, so envs
  with more data were drawn more often).
- Loss: `models.masked_token_mse` on actuated tokens only, normalised by their count (quirks 1, 2;
  `train.legacy_loss` reproduces the reference's mean over every padded token).
- Models: `MxtTransformer` ('mxt_transformer') or `MxtMLP` ('mxt_mlp') from the core MODELS registry; training,
  checkpoints and resume are the core's (`gdt.core.trainer.train_loop`, `gdt.core.checkpoint`).
- Evaluation: per env, `eval.episodes` episodes batched in one core rollout (`gdt.core.rollout`) whose policy step
  renders the tokens with `graph.render` inside the scan; success rate (ended by the goal before the time limit),
  final distance, final/initial distance, return (`envs.GoalEvalWrapper`'s bookkeeping).
- Modes: train (evaluate the trained envs), zero_shot (train on a split's train_envs, evaluate its held-out
  test_envs), few_shot (a new workdir initialised from `few_shot.source_workdir`'s params, trained on
  `few_shot.num_demos` episodes of each fine-tune env, then evaluated on them).

    result = train_and_evaluate(config, "workdirs/mxt_bc")   # experiments/train_mxt.py
    policy = load_policy("workdirs/mxt_bc")                  # also `morphology.load_policy`
    policy.act("ant_reach_3", raw_state)                     # -> action [A] (or [B, A] for a batch of raw states)
    policy.evaluate("ant_reach_3", episodes=16)              # -> {'success_rate': ..., 'final_distance': ...}
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import os
import time
from typing import Any, Callable, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs import mxt_base  # the config's fields and their rules, beside the defaults
from gdt.core import checkpoint as core_ckpt
from gdt.core import rollout
from gdt.core.checkpoint import MODELS
from gdt.core.cli import check_fields
from gdt.core.registry import Registry
from gdt.core.trainer import OPTIMIZERS, Hook, Trainer, train_loop
from gdt.core.workdir import WorkdirLock, atomic_write_bytes, config_to_dict, format_seconds, prepare_workdir
from morphology import data as mxt_data
from morphology import envs, graph, models, splits


@OPTIMIZERS.register("adam_clip")
def adam_clip(train_config) -> optax.GradientTransformation:
  """The reference's BC optimiser: every gradient entry clipped to [-grad_clip, grad_clip], then Adam."""
  return optax.chain(optax.clip(train_config.grad_clip), optax.adam(train_config.learning_rate))


# ---- models from a config ----

# model name -> kwargs of its MODELS constructor from a run config (so the checkpoint record rebuilds it).
MODEL_KWARGS: Registry[Callable[[Any], dict]] = Registry("mxt model kwargs")
MODEL_KWARGS.register("mxt_transformer", lambda c: dict(
    obs_config=c.obs_config, num_layers=c.model.num_layers, embed_dim=c.model.embed_dim,
    num_heads=c.model.num_heads, mlp_dim=c.model.mlp_dim, dropout_rate=c.model.dropout_rate,
    max_positions=graph.MAX_TOKENS if c.model.learned_positions else None, norm=c.model.norm,
    scale_embedding=c.model.scale_embedding))
MODEL_KWARGS.register("mxt_mlp", lambda c: dict(
    obs_config=c.obs_config, max_tokens=graph.MAX_TOKENS, hidden_dim=c.model.hidden_dim,
    num_hidden=c.model.num_hidden))


def model_spec(config) -> dict:
  """The checkpoint's model record of a run config."""
  return core_ckpt.model_spec(config.model.name, **MODEL_KWARGS.get(config.model.name)(config))


# ---- config ----


def validate_config(config) -> None:
  """Refuses, naming the field, a config that could not train and evaluate; runs before anything is loaded."""
  check_fields(config, mxt_base.FIELDS, defaults="experiments/configs/mxt_base.py")
  _get("model.name", MODEL_KWARGS.get, config.model.name)
  _get("model.name", MODELS.get, config.model.name)
  obs = _get("obs_config", graph.OBS_CONFIGS.get, config.obs_config)
  wants_flat = config.model.name == "mxt_mlp"
  if obs.flat != wants_flat:
    raise ValueError(f"config field 'obs_config': {config.obs_config!r} is {'flat' if obs.flat else 'per-token'}, "
                     f"{config.model.name} reads {'flat' if wants_flat else 'per-token'} configs "
                     f"(e.g. {mxt_base.DEFAULT_OBS[config.model.name]!r})")
  _get("train.optimizer", OPTIMIZERS.get, config.train.optimizer)
  if config.split:
    _get("split", splits.get_split, config.split)
  for field, names in (("envs", config.envs), ("eval.envs", config.eval.envs)):
    for name in names:
      _get(field, envs.parse, name)
  devices = jax.local_device_count()
  if config.train.batch_size % devices:
    raise ValueError(f"config field 'train.batch_size': {config.train.batch_size} must be a multiple of the "
                     f"{devices} local devices")
  found = mxt_base.conflicts(config)
  if found:
    raise ValueError("; ".join(f"config field {field!r}: {why}" for field, why in found))


def _get(field: str, getter, name):
  try:
    return getter(name)
  except KeyError as e:
    raise ValueError(f"config field {field!r}: {e.args[0]}") from None


def run_envs(config) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(envs trained on, envs evaluated on) of the config's mode; `eval.envs` replaces the evaluated ones."""
  split = splits.get_split(config.split) if config.split else None
  if config.mode == "zero_shot":
    train, test = split.train_envs, split.test_envs
  else:
    train = tuple(config.envs) or (split.finetune_envs if config.mode == "few_shot" else split.train_envs)
    test = train
  return train, tuple(config.eval.envs) or test


# ---- data ----


def _expert_policy(experts_root: str, env_name: str, allow_rejected: bool = False) -> tuple[mxt_data.ActFn, dict]:
  """The expert of `env_name` under `experts_root` (accepted unless `allow_rejected`), as (act, dataset
  metadata)."""
  try:
    from morphology import experts  # trained by experiments/train_experts; imported only when data is missing
  except ImportError as e:
    raise ValueError(f"config field 'data.experts_root': cannot load experts ({e})") from None
  workdir = experts.expert_workdir(experts_root, env_name)
  expert = experts.load_expert(workdir, allow_rejected=allow_rejected)
  return expert.act_fn(), {"env_config": mxt_data.env_config_dict(expert.env_config), "source": "expert",
                           "expert_step": int(expert.step), "expert_success": float(expert.success),
                           "expert_accepted": bool(experts.read_expert_json(workdir)["accepted"]),
                           "expert_workdir": os.path.abspath(expert.workdir)}


def load_datasets(config, env_names: Sequence[str], episodes: int = 0,
                  log: Callable[[str], None] = print) -> list[mxt_data.MxtDataset]:
  """Each env's dataset from `data.dataset_dir`, collected from its expert first when missing and
  `data.experts_root` is set; only its successful episodes with `data.successful_only`; then the first `episodes`
  episodes of each (0 = all). Refuses data of a changed MJCF."""
  out = []
  d = config.data
  for name in env_names:
    path = mxt_data.dataset_path(d.dataset_dir, name)
    if d.experts_root:
      ds = mxt_data.load_or_collect(d.dataset_dir, name, functools.partial(_expert_policy, d.experts_root, name,
                                                                            d.allow_rejected_experts),
                                    episodes=max(episodes, d.collect_episodes), seed=d.seed,
                                    episode_length=d.episode_length or None, log=log)
    elif not os.path.exists(path):
      raise FileNotFoundError(f"dataset {path} not found (config field data.dataset_dir); set data.experts_root "
                              "(config argument experts_root=...) to collect it from the trained experts")
    else:
      ds = mxt_data.MxtDataset.load(path)
    ds.check_env(envs.make(name, config=mxt_data.env_config_from_dict(ds.metadata["env_config"])))
    if d.successful_only:
      try:
        ds = ds.successful()
      except ValueError as e:
        raise ValueError(f"config field 'data.successful_only': {e}") from None
    if episodes > ds.num_episodes:
      raise ValueError(f"{name}: {episodes} episodes asked for (few_shot.num_demos or data.episodes_per_env), "
                       f"{ds.num_episodes} {'successful ones ' if d.successful_only else ''}in {path}")
    out.append(ds.episodes(episodes) if episodes else ds)
  return out


@flax.struct.dataclass
class MultiTaskData:
  """Every env's valid transitions, concatenated: tokens [M, L', F], mask [M, L'], targets [M, L] (per-token
  actions), action_mask [M, L] (actuated tokens); env e owns rows offsets[e] .. offsets[e] + counts[e]."""

  tokens: jax.Array
  mask: jax.Array
  targets: jax.Array
  action_mask: jax.Array
  offsets: jax.Array
  counts: jax.Array
  row_fields = ("tokens", "mask", "targets", "action_mask")  # split over the devices with train.shard_data


def multitask_data(rendered: Sequence[mxt_data.RenderedData], model_obs_config: str) -> MultiTaskData:
  """Concatenates the valid steps of each env's rendered data; refuses data rendered under another config."""
  parts = []
  for r in rendered:
    models.check_observation_config(r.config, model_obs_config)
    v = r.valid.astype(bool)
    if not v.any():
      raise ValueError(f"{r.env_name}: the dataset has no valid transition")
    parts.append((r.tokens[v], r.mask[v], r.actions[v], np.broadcast_to(r.action_mask, r.actions[v].shape)))
  counts = np.array([p[0].shape[0] for p in parts], np.int32)
  if not graph.OBS_CONFIGS.get(model_obs_config).flat:
    # Padding tokens are masked out of attention, so dropping the ones no env of the run has changes no output
    # and saves their share of every step (positions are still the token index, sliced from max_positions).
    keep = max(real_tokens(p[1]) for p in parts)
    parts = [(tok[:, :keep], mask[:, :keep], act[:, :keep], am[:, :keep]) for tok, mask, act, am in parts]
  cat = lambda i, dtype: np.concatenate([p[i] for p in parts]).astype(dtype)
  return MultiTaskData(tokens=cat(0, np.float32), mask=cat(1, bool), targets=cat(2, np.float32),
                       action_mask=cat(3, bool), offsets=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32),
                       counts=counts)


def real_tokens(mask: np.ndarray) -> int:
  """1 + the last token index that is real in any row of `mask` [..., L] (real tokens come first)."""
  any_row = np.asarray(mask).reshape(-1, np.shape(mask)[-1]).any(axis=0)
  return int(np.flatnonzero(any_row)[-1]) + 1 if any_row.any() else 1


def _render_fn(layout: graph.TokenLayout):
  """Raw states [B, ...] -> (tokens, mask) of a batch, without the padding tokens a per-token config would add
  (see `multitask_data`); flat configs keep their fixed size."""
  render = jax.vmap(graph.render, in_axes=(None, 0))
  if graph.OBS_CONFIGS.get(layout.config).flat:
    return functools.partial(render, layout)
  keep = layout.num_tokens

  def fn(raws):
    tokens, mask = render(layout, raws)
    return tokens[:, :keep], mask[:, :keep]

  return fn


@flax.struct.dataclass
class Batch:
  tokens: jax.Array  # [B, L', F]
  mask: jax.Array  # [B, L']
  targets: jax.Array  # [B, L]
  action_mask: jax.Array  # [B, L]
  env: jax.Array  # [B] int32: the env each row was drawn from


def sample_batch(data: MultiTaskData, rng: jax.Array, batch_size: int) -> Batch:
  """Env ~ U{0..E-1}, then transition ~ U within that env."""
  k_env, k_row = jax.random.split(rng)
  env = jax.random.randint(k_env, (batch_size,), 0, data.counts.shape[0])
  count = data.counts[env]
  within = jnp.minimum(jnp.floor(jax.random.uniform(k_row, (batch_size,)) * count).astype(jnp.int32), count - 1)
  idx = data.offsets[env] + within
  return Batch(data.tokens[idx], data.mask[idx], data.targets[idx], data.action_mask[idx], env)


class MxtTrainer(Trainer):
  """The core trainer with a run's MxT model, the uniform multi-task sampler and the masked token MSE."""

  def __init__(self, config, token_shape: tuple[int, int], devices=None):
    self.config = config
    self.spec = model_spec(config)
    self.model = core_ckpt.build_model(self.spec)
    self.token_shape = tuple(token_shape)  # (L', F) of one rendered state
    t = config.train
    super().__init__(self._init_params, self._sample, self._loss, OPTIMIZERS.get(t.optimizer)(t), devices=devices,
                     shard_data=t.shard_data)

  def _init_params(self, rng):
    tokens = jnp.zeros((1, *self.token_shape))
    return self.model.init({"params": rng}, tokens, jnp.ones(tokens.shape[:2], bool))["params"]

  def _sample(self, data: MultiTaskData, rng) -> Batch:
    return sample_batch(data, rng, self.config.train.batch_size)

  def _loss(self, params, batch: Batch, rng) -> jax.Array:
    pred = self.model.apply({"params": params}, batch.tokens, batch.mask, deterministic=False,
                            rngs={"dropout": rng})
    return models.masked_token_mse(pred, batch.targets, batch.action_mask, legacy_mean=self.config.train.legacy_loss)


# ---- evaluation ----

METRICS = ("success_rate", "final_distance", "final_over_initial", "episode_return", "episode_length")


@functools.lru_cache(maxsize=64)
def _eval_fns(model, env_name: str, episode_length: int, chunk_steps: int):
  """(eval env, run_chunk) of one model on one env: tokens rendered from the env state inside the scan, params an
  input, so any params of the model reuse the compilation."""
  env = envs.make(env_name)
  layout = graph.layout_for_env(env, model.obs_config)
  eval_env = envs.wrap_eval(env, episode_length)
  render = _render_fn(layout)

  def act(params, carry, env_state, t, key):
    del t, key  # deterministic policy
    tokens, mask = render(graph.raw_state_from_env_state(env_state))
    return graph.actions_from_tokens(layout, model.apply({"params": params}, tokens, mask)), carry

  def observe(params, carry, tr: rollout.Transition):
    del params, tr
    return carry, {}

  return eval_env, rollout.make_chunk(eval_env, act, observe, chunk_steps)


def evaluate_env(model, params, env_name: str, *, episodes: int, seed: int, episode_length: int = 0,
                 chunk_steps: int = 100, label: str | None = None) -> dict:
  """`episodes` deterministic episodes of the policy on `env_name` at once -> the mean METRICS, plus 'env',
  'episodes', 'per_episode' (each metric per episode), 'compile_s' and 'run_s'."""
  horizon = episode_length or envs.parse(env_name).task.episode_length
  chunk = min(chunk_steps, horizon)
  eval_env, run_chunk = _eval_fns(model, env_name, horizon, chunk)
  reset_rng, step_rng = jax.random.split(jax.random.PRNGKey(seed))
  state = rollout.init_state(eval_env, reset_rng, np.full(episodes, horizon), None)
  # Host copies: params from a train state (mesh-replicated) and from a checkpoint (one device) then lower to the
  # same program, so the in-training and final evaluations share one compilation.
  res = rollout.run(run_chunk, jax.device_get(params), state, horizon, chunk, step_rng, label=label)
  ev = {k: np.asarray(v, np.float64) for k, v in jax.device_get(res.state.env_state.info["eval"]).items()}
  ratio = ev["final_distance"] / np.maximum(ev["initial_distance"], 1e-8)
  per = {"success_rate": ev["success"], "final_distance": ev["final_distance"], "final_over_initial": ratio,
         "episode_return": ev["episode_return"], "episode_length": ev["length"]}
  return {**{k: float(per[k].mean()) for k in METRICS}, "env": env_name, "episodes": int(episodes),
          "per_episode": {k: v.tolist() for k, v in per.items()}, "compile_s": res.compile_s, "run_s": res.run_s}


def evaluate_envs(model, params, env_names: Sequence[str], *, episodes: int, seed: int, episode_length: int = 0,
                  chunk_steps: int = 100, log: Callable[[str], None] = print) -> list[dict]:
  rows = []
  for name in env_names:
    row = evaluate_env(model, params, name, episodes=episodes, seed=seed, episode_length=episode_length,
                       chunk_steps=chunk_steps)
    log(f"[eval] {name}: success {row['success_rate']:.3f}, final distance {row['final_distance']:.3f} "
        f"({row['final_over_initial']:.3f} of initial), return {row['episode_return']:.2f} "
        f"(compile {row['compile_s']:.1f}s, run {row['run_s']:.1f}s)")
    rows.append(row)
  return rows


def mean_row(rows: Sequence[dict]) -> dict:
  return {k: float(np.mean([r[k] for r in rows])) for k in METRICS}


def markdown_table(rows: Sequence[dict], title: str = "") -> str:
  head = "| env | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
  line = lambda name, r: f"| {name} | " + " | ".join(f"{r[k]:.4g}" for k in METRICS) + " |\n"
  body = "".join(line(r["env"], r) for r in rows) + (line("**mean**", mean_row(rows)) if len(rows) > 1 else "")
  return (f"### {title}\n\n" if title else "") + head + body


def write_tables(workdir: str, name: str, rows: Sequence[dict], title: str = "") -> None:
  """<workdir>/<name>.md, .csv and .json (per-episode values too), each written atomically."""
  atomic_write_bytes(os.path.join(workdir, f"{name}.md"), markdown_table(rows, title).encode())
  with io.StringIO() as buf:
    writer = csv.writer(buf)
    writer.writerow(["env", "episodes", *METRICS])
    for r in rows:
      writer.writerow([r["env"], r["episodes"], *(r[k] for k in METRICS)])
    atomic_write_bytes(os.path.join(workdir, f"{name}.csv"), buf.getvalue().encode())
  atomic_write_bytes(os.path.join(workdir, f"{name}.json"), (json.dumps(list(rows), indent=1) + "\n").encode())


# ---- a whole run ----

DATASETS_FILE = "datasets.json"  # the datasets a workdir was trained on (resuming on others is refused)


def _check_datasets(workdir: str, record: dict) -> None:
  path = os.path.join(workdir, DATASETS_FILE)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if old != record:
      changed = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
      raise ValueError(f"{workdir} was trained on other datasets (envs {changed} differ from {path}); use a new "
                       "--workdir")
  else:
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def _source_params(config, trainer: MxtTrainer):
  """Few-shot: the source checkpoint's params, after checking it holds this config's model."""
  src = config.few_shot.source_workdir
  loaded = core_ckpt.load_model(src)
  if loaded.meta["model"] != trainer.spec:
    diff = sorted(k for k in set(loaded.meta["model"]["kwargs"]) | set(trainer.spec["kwargs"])
                  if loaded.meta["model"]["kwargs"].get(k) != trainer.spec["kwargs"].get(k))
    raise ValueError(f"config field 'few_shot.source_workdir': {src} holds model {loaded.meta['model']['name']} "
                     f"with other settings ({diff or 'name'}) than this config's {trainer.spec['name']}; set the "
                     "model fields to the source run's")
  return loaded.params, loaded.step


def train_and_evaluate(config, workdir: str, log: Callable[[str], None] = print) -> list[dict]:
  """Trains `config` in `workdir` (resuming from its last checkpoint) and evaluates the result per env; writes
  `eval_<mode>.{md,csv,json}` into the workdir and returns the rows."""
  validate_config(config)
  train_names, eval_names = run_envs(config)
  episodes = config.few_shot.num_demos if config.mode == "few_shot" else config.data.episodes_per_env
  datasets = load_datasets(config, train_names, episodes, log)  # before the workdir is written: a missing dataset
  # leaves no config.json behind that would refuse the corrected command
  with WorkdirLock(workdir):
    saved = core_ckpt.latest_meta(workdir)
    prepare_workdir(workdir, config, allow_changes=("train.num_steps", "train.shard_data", "eval"),
                    added_fields=mxt_base.ADDED_FIELDS,
                    recorded=None if saved is None else saved["config"])
    _check_datasets(workdir, {ds.env_name: ds.source.get("npz_sha256", "") + f"/{ds.num_episodes}"
                              for ds in datasets})
    rendered = [mxt_data.render_dataset(ds, graph.layout_for_name(ds.env_name, config.obs_config))
                for ds in datasets]
    mt = multitask_data(rendered, config.obs_config)
    log(f"[train] {len(datasets)} envs, {int(mt.counts.sum())} transitions (per env {mt.counts.tolist()}), "
        f"mode {config.mode}")
    trainer = MxtTrainer(config, mt.tokens.shape[1:])
    state = trainer.init(config.seed)
    if config.mode == "few_shot" and saved is None:
      params, step = _source_params(config, trainer)
      params = jax.device_put(params, trainer.replicated)
      state = state.replace(params=params, opt_state=jax.device_put(trainer.optimizer.init(params),
                                                                    trainer.replicated))
      log(f"[train] few-shot: initialised from {config.few_shot.source_workdir} (step {step})")
    meta = {"model": trainer.spec, "config": config_to_dict(config), "obs_config": config.obs_config,
            "train_envs": list(train_names), "max_tokens": graph.MAX_TOKENS}
    t, e = config.train, config.eval
    evaluate_now = functools.partial(evaluate_envs, trainer.model, episodes=e.episodes, seed=config.seed + 1,
                                     episode_length=e.episode_length, chunk_steps=e.chunk_steps, log=log)
    hooks = []
    if e.every:
      hooks.append(Hook(e.every, lambda step, s: {f"eval_{k}": v
                                                  for k, v in mean_row(evaluate_now(s.params, eval_names)).items()}))
    t0 = time.perf_counter()
    train_loop(trainer, state, trainer.put_data(mt, log=log), workdir, num_steps=t.num_steps,
               steps_per_call=t.steps_per_call,
               checkpoint_every=t.checkpoint_every, max_checkpoints=t.max_checkpoints, meta=meta, hooks=hooks,
               log=log)
    log(f"[train] {format_seconds(time.perf_counter() - t0)}")
    policy = load_policy(workdir)
    rows = evaluate_now(policy.params, eval_names)
    title = f"{config.mode}: {config.model.name} ({config.obs_config}), step {policy.step}"
    write_tables(workdir, f"eval_{config.mode}", rows, title)
    log(markdown_table(rows, title))
  return rows


# ---- a trained policy for notebooks ----


@dataclasses.dataclass
class MxtPolicy:
  """A trained MxT policy from its workdir: acts on any registered env's raw state, evaluates on any env."""

  model: Any
  params: Any
  meta: dict
  step: int
  _acts: dict = dataclasses.field(default_factory=dict, init=False, repr=False)

  @property
  def obs_config(self) -> str:
    return self.model.obs_config

  def layout(self, env_name: str) -> graph.TokenLayout:
    return _layout(env_name, self.obs_config)

  def act(self, env_name: str, raw: graph.RawState) -> jax.Array:
    """Deterministic action [A] of one raw state ([B, A] for raw states with a leading batch axis)."""
    batched = jnp.ndim(raw.pos) == 3
    raws = raw if batched else jax.tree.map(lambda x: jnp.asarray(x)[None], raw)
    action = self._act_fn(env_name)(self.params, raws)
    return action if batched else action[0]

  def _act_fn(self, env_name: str):
    """jit'd (params, raw states [B, ...]) -> actions [B, A] of one env, built once per env."""
    if env_name not in self._acts:
      layout, model = self.layout(env_name), self.model
      render = _render_fn(layout)

      def act(params, raws):
        tokens, mask = render(raws)
        return graph.actions_from_tokens(layout, model.apply({"params": params}, tokens, mask))

      self._acts[env_name] = jax.jit(act)
    return self._acts[env_name]

  def evaluate(self, env_name: str, *, episodes: int = 16, seed: int = 0, episode_length: int = 0) -> dict:
    return evaluate_env(self.model, self.params, env_name, episodes=episodes, seed=seed,
                        episode_length=episode_length)


@functools.lru_cache(maxsize=256)
def _layout(env_name: str, config: str) -> graph.TokenLayout:
  return graph.layout_for_name(env_name, config)


def load_policy(workdir: str, step: int | None = None) -> MxtPolicy:
  """The policy saved at `step` (default: the newest intact one) in `workdir`; needs only the workdir."""
  loaded = core_ckpt.load_model(workdir, step)
  return MxtPolicy(loaded.model, loaded.params, loaded.meta, loaded.step)

