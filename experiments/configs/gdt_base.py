"""Shared defaults of every GDT-family run (DT, CDT, BDT, BC): gdt_reference.md §5.1 hyperparameters.

Not a runnable config by itself; `dt.py`, `cdt.py`, `bdt.py` and `bc.py` call `get_config(arg, conditioning=...)`.
Config arguments (`--config=experiments/configs/cdt.py:env=hopper,feature=reward,seed=1`): env, dataset, feature,
data_dir, seed, steps (train.num_steps). Several datasets (`extra_datasets`, envs with the same spaces) and
synthetic bimodal targets (`eval.synthetic=mixture`), as experiments/paper/gdt_bimodal.py runs them:
  python -m experiments.train_gdt --config=experiments/configs/cdt.py:env=halfcheetah,dataset=expert \
      --config.data_dir=workdirs/paper/data/halfcheetah_quick \
      "--config.extra_datasets=('cheetah_vel:expert@../cheetah_vel_stand_quick_expert',)" \
      --config.eval.synthetic=mixture "--config.eval.score_features=()" --workdir=workdirs/cdt_bimodal Every field's rule (type, range, which values cannot work together) is in
`FIELDS` and `conflicts` below the defaults; `gdt.train.validate_config` applies them before any work.

Runtime: the paper size (3 layers, embed 128, batch 64, 100k steps) runs at 104-129 ms/step on 2 CPU cores
(benchmarks/bench_train_step.py, 2026-12-02: 0.60x the reference PyTorch step's time, median of 3), i.e. ~3-3.6 h
on CPU. The CPU-sized model below (embed 64, 2 layers, batch 32, lr 3e-4) trains 3 vmapped seeds at ~11 steps/s
each on 2 cores loaded 3-4 and evaluates 10 targets x 4 episodes x 1000 steps (40k env steps) in ~10 s at ~4k
env steps/s including the model.

Expected result, quick data (workdirs/data_quick: halfcheetah medium-expert, spring, experts and medium chosen by
the return of the policy's mode; 190 training / 10 held-out trajectories), the CPU-sized model above trained 3000
steps, 4 episodes per target, open-loop schedule, seeds 0-2 trained together (--vmap_seeds; 18 min for the 9 runs
on 2 cores loaded 3-4). x-velocity W1 over the 10 held-out targets, mean ± std over seeds, measured 2026-12-02 on
this workplace's machines with the defaults above (bfloat16 matmuls; the PPO data differ across CPUs: see
experiments/configs/data.py; expect other digits elsewhere):
  CDT 0.160 ± 0.003 (best 0.135, middle 0.186) < DT 0.174 ± 0.003 (best 0.157, middle 0.191)
  < BC 0.632 ± 0.017 (best 0.845, middle 0.420)
  python -m launch.seeds --configs=cdt,dt,bc --arg=env=halfcheetah,dataset=medium-expert,feature=x_velocity,steps=3000,data_dir=workdirs/data_quick \
      --seeds=0,1,2 --vmap_seeds --workdir=workdirs/headline_v2 --set=model.embed_dim=64 --set=model.num_layers=2 \
      --set=train.batch_size=32 --set=train.steps_per_call=250 --set=train.warmup_steps=600 \
      --set=train.learning_rate=3e-4 --set=train.checkpoint_every=3000 --set=eval.episodes_per_target=4
With float32 matmuls (--set=model.matmul_dtype=float32) CDT and DT on the quick halfcheetah data of
experiments/paper/gdt_smm.py (2000 steps, same model) gave CDT 0.158 ± 0.014 / DT 0.169 ± 0.018 against bfloat16's
0.165 ± 0.006 / 0.173 ± 0.013, and the same final losses to 1e-4 (workdirs/precision/run.sh).
The measured numbers above date from before commit f8128f5 (XLA's CPU emitters): on the same machine they are
reproduced with `SEQRL_NO_XLA_DEFAULTS=1` in front of the command (BUILD.md, "XLA flags and numerics").
"""

from __future__ import annotations

import ml_collections

from gdt.core import workdir
from gdt.core.cli import Field
from gdt.core.config import parse_arg

ARGS = dict(env="halfcheetah", dataset="medium-expert", feature="x_velocity", data_dir="workdirs/data_quick", seed=0,
            steps=100_000)


def get_config(arg: str | None = None, *, conditioning: str) -> ml_collections.ConfigDict:
  a = parse_arg(arg, **ARGS)
  c = ml_collections.ConfigDict()
  c.env, c.dataset, c.feature, c.data_dir, c.seed = a.env, a.dataset, a.feature, a.data_dir, a.seed
  # More datasets to train on, joined with env-dataset: 'env:dataset' (in data_dir) or 'env:dataset@DIR' (DIR relative
  # to data_dir, e.g. '../backflip' = a sibling data workdir). Envs may differ if their observation and action spaces
  # agree (halfcheetah + cheetah_backflip); every trajectory keeps its task and is evaluated in it.
  c.extra_datasets = ()
  c.conditioning = conditioning  # 'rtg' (DT) | 'histogram' (CDT) | 'anticausal' (BDT) | 'none' (BC)
  c.context_length = 20  # K
  c.num_bins = 30  # histogram bins of the feature (31 edges over its range): CDT's z_t and the W1 grid
  c.gamma = 1.0
  c.rtg_scale = 1000.0  # DT's z_t = future sum / rtg_scale
  # Fidelity flag (gdt_reference.md §8.2): the reference computes state mean/std and bin ranges over every
  # trajectory, held-out targets included; by default they come from the training trajectories only.
  c.stats_include_targets_like_reference = False

  c.model = ml_collections.ConfigDict(dict(
      embed_dim=128, num_layers=3, num_heads=1, dropout_rate=0.1, max_timestep=1000,
      z_dim=16, encoder_horizon=20,
      bdt_unflipped_like_reference=False,  # fidelity flag: BDT's z not flipped back (gdt_reference.md §3.2)
      # The trunk's Dense matmul inputs: 'bfloat16' (float32 accumulation, parameters and optimiser) or
      # 'float32'. bfloat16 makes the paper-size CPU step ~1.2x faster (benchmarks/bench_train_step.py, AVX-512
      # BF16); gradients differ from float32 by ~0.6% relative, final losses and W1 by less than seed noise.
      matmul_dtype="bfloat16",
      # CDT's histogram as fed to its embedding (gdt.conditioning.HISTOGRAM_INPUTS): 'probability' (the reference's,
      # rows sum to 1) or 'density' (times the number of bins). On the bimodal quick data CDT read its histogram
      # far sooner with 'density' (experiments/paper/gdt_bimodal.py); the other experiments' numbers use 'probability'.
      histogram_input="probability"))

  c.train = ml_collections.ConfigDict(dict(
      optimizer="adamw_warmup",  # a name in gdt.core.trainer.OPTIMIZERS
      batch_size=64, num_steps=a.steps, steps_per_call=500, learning_rate=1e-4, weight_decay=1e-4,
      warmup_steps=10_000, grad_clip_norm=0.25, checkpoint_every=10_000, max_checkpoints=3,
      uniform_traj_sampling=False,  # fidelity flag: the reference samples trajectories uniformly (§8.3)
      # Probability that a window starts at its episode's first step (0: the reference's uniform start, which puts
      # 1/len of the windows there): where an episode's behaviour is set in its first steps.
      episode_start_fraction=0.0,
      # PRNG of the dropout masks: 'rbg' (XLA's RngBitGenerator) made the paper-size CPU step 192 -> 161 ms with
      # float32 uniforms; with the trunk's 16-bit uniforms rbg and threefry are within noise (A/B 126-129 vs
      # 118-133 ms, benchmarks/bench_train_step.py). rbg masks depend on the device count, threefry's do not.
      dropout_prng="rbg",
      # Split the dataset's rows over the devices (each holds 1/N; on multi-host each process places only its own
      # devices' rows) instead of replicating it: for data larger than one device's memory. Same batches and
      # results; may change on resume.
      shard_data=False))

  c.eval = ml_collections.ConfigDict(dict(
      best_k=5, middle_k=5, episodes_per_target=20, chunk_steps=100, plots=True,
      middle_quantile=0.5,  # where the middle targets sit in each task's returns (the reference's: the median)
      score_features=("reward",),  # scored besides `feature` (W1 of the reward histogram too)
      schedule="open_loop",  # the reference's time-indexed target schedule; 'closed_loop' updates from what was achieved
      xvel_offset_like_gdt=False,  # fidelity flag: record the feature of the NEXT state as the reference does (§4)
      # Synthetic targets besides the held-out ones: '' (none) or a name in gdt.targets.SYNTHETIC. 'mixture': for
      # each weight w, w h(first task's held-out target i) + (1 - w) h(second task's target i) (a bimodal target
      # of a forward and a backflip cheetah), rolled out in `synthetic_task` ('' = the first mixture task);
      # `mixture_tasks` () = the data's first two tasks. DT gets the mixture's expected future sum. 'twin': for each
      # middle target of `twin_task` ('' = the first mixture task), the mixture of the two tasks' best targets with
      # its mean (and DT's conditioning), a bimodal target a return-conditioned policy cannot tell from that one.
      synthetic="", mixture_weights=(0.25, 0.5, 0.75), mixture_tasks=(), synthetic_task="", twin_task=""))
  return c


# Fields added after runs were recorded -> the value that reproduces what such a run did: a run recorded without the
# field is the same run as one with this value (launch.paper reads old records through `with_added_fields`).
ADDED_FIELDS = {"model.histogram_input": "probability", "train.episode_start_fraction": 0.0,
                "eval.middle_quantile": 0.5, "eval.twin_task": ""}


def with_added_fields(recorded: dict) -> dict:
  """A recorded config dict (config.json) with every ADDED_FIELDS key it lacks set to the value old runs had."""
  return workdir.with_added_fields(recorded, ADDED_FIELDS)


# The rule of every field above, read by gdt.train.validate_config before anything is loaded or written (a field not
# listed here is refused as unknown). Checked there against the code, not here: names that must be registered (env,
# conditioning, feature and eval.score_features (a registered feature or an observation-layout name of the env),
# train.optimizer, train.dropout_prng, eval.schedule), train.batch_size against the devices, and the dataset
# (gdt.train.validate_dataset: its env, features and enough trajectories for the held-out targets).
_POSITIVE = Field(int, ge=1)
FIELDS = {
    "env": Field(str, nonempty=True), "dataset": Field(str, nonempty=True), "feature": Field(str, nonempty=True),
    "data_dir": Field(str, nonempty=True),
    "extra_datasets": Field(tuple, items=str),  # 'env:dataset' or 'env:dataset@DIR'; checked in gdt.train
    "seed": Field(int, ge=0, lt=2**31 - 1),  # evaluation uses seed + 1
    "conditioning": Field(str, nonempty=True),
    "context_length": _POSITIVE,
    "num_bins": Field(int, ge=2),
    "gamma": Field(float, gt=0, le=1),
    "rtg_scale": Field(float, gt=0),
    "stats_include_targets_like_reference": Field(bool),
    "model.embed_dim": _POSITIVE, "model.num_layers": _POSITIVE, "model.num_heads": _POSITIVE,
    "model.dropout_rate": Field(float, ge=0, lt=1),
    "model.max_timestep": _POSITIVE, "model.z_dim": _POSITIVE, "model.encoder_horizon": _POSITIVE,
    "model.bdt_unflipped_like_reference": Field(bool),
    "model.matmul_dtype": Field(str, nonempty=True),  # a gdt.core.transformer.MATMULS name
    "model.histogram_input": Field(str, nonempty=True),  # a gdt.conditioning.HISTOGRAM_INPUTS name
    "train.optimizer": Field(str, nonempty=True),
    "train.batch_size": _POSITIVE,
    "train.num_steps": _POSITIVE,  # a finished run is re-evaluated by rerunning it with the same num_steps
    "train.steps_per_call": _POSITIVE,
    "train.learning_rate": Field(float, gt=0, le=1),
    "train.weight_decay": Field(float, ge=0),
    "train.warmup_steps": Field(int, ge=0),
    "train.grad_clip_norm": Field(float, gt=0),
    "train.checkpoint_every": _POSITIVE,
    "train.max_checkpoints": Field(int, ge=1, none=True),  # None keeps every checkpoint; 0 would keep none
    "train.uniform_traj_sampling": Field(bool),
    "train.episode_start_fraction": Field(float, ge=0, le=1),
    "train.dropout_prng": Field(str, nonempty=True),
  "train.shard_data": Field(bool),
    "eval.best_k": Field(int, ge=0), "eval.middle_k": Field(int, ge=0),
    "eval.middle_quantile": Field(float, gt=0, lt=1),
    "eval.episodes_per_target": _POSITIVE, "eval.chunk_steps": _POSITIVE, "eval.plots": Field(bool),
    "eval.score_features": Field(tuple, items=str),
    "eval.schedule": Field(str, nonempty=True),
    "eval.xvel_offset_like_gdt": Field(bool),
    "eval.synthetic": Field(str),  # '' or a gdt.targets.SYNTHETIC name
    "eval.mixture_weights": Field(tuple, items=float, nonempty=True),
    "eval.mixture_tasks": Field(tuple, items=str), "eval.synthetic_task": Field(str), "eval.twin_task": Field(str),
}


def conflicts(c) -> list[tuple[str, str]]:
  """(field, why) of every set of values in `c` that cannot work together; each value already obeys FIELDS."""
  out = []
  if c.model.embed_dim % c.model.num_heads:
    out.append(("model.num_heads", f"model.embed_dim={c.model.embed_dim} does not split into {c.model.num_heads} "
                                   "heads (embed_dim % num_heads must be 0)"))
  if c.context_length > c.model.max_timestep:
    out.append(("context_length", f"{c.context_length} exceeds model.max_timestep={c.model.max_timestep}"))
  if c.eval.schedule.startswith("closed_loop") and c.conditioning == "rtg" and c.gamma != 1:
    out.append(("eval.schedule", f"the closed-loop rtg schedule subtracts undiscounted sums, so it needs gamma == 1, "
                                 f"got gamma={c.gamma}; use eval.schedule=open_loop or gamma=1"))
  if c.eval.best_k + c.eval.middle_k < 1:
    out.append(("eval.best_k/middle_k", "both are 0: no held-out target to evaluate on"))
  if c.eval.synthetic:
    if c.eval.score_features:
      out.append(("eval.score_features", f"synthetic targets ({c.eval.synthetic!r}) have only a {c.feature} "
                                         f"distribution, nothing to score {tuple(c.eval.score_features)} against; "
                                         "set eval.score_features=()"))
    if c.conditioning == "anticausal":
      out.append(("eval.synthetic", "BDT conditions on demonstration states; a synthetic distribution has none"))
    if c.eval.synthetic in ("mixture", "twin") and not c.extra_datasets:
      out.append(("eval.synthetic", f"{c.eval.synthetic!r} mixes the held-out targets of two tasks: name the second "
                                    "task's data in extra_datasets"))
  if any(not 0 <= w <= 1 for w in c.eval.mixture_weights):
    out.append(("eval.mixture_weights", f"weights must lie in [0, 1], got {tuple(c.eval.mixture_weights)}"))
  if c.eval.mixture_tasks and len(c.eval.mixture_tasks) != 2:
    out.append(("eval.mixture_tasks", f"names the two mixed tasks (or () for the data's first two), got "
                                      f"{tuple(c.eval.mixture_tasks)}"))
  t = c.train
  if t.checkpoint_every % t.steps_per_call and t.checkpoint_every < t.num_steps:
    # Checkpoints are written between calls only, so the requested ones would silently not exist.
    out.append(("train.checkpoint_every", f"{t.checkpoint_every} is not a multiple of train.steps_per_call="
                                          f"{t.steps_per_call}: checkpoints are written between calls only"))
  return out
