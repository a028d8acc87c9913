"""MxT-Bench behaviour distillation: multi-task BC of the token transformer (or the MLP baseline) on expert data
stored as raw state (morphology.data), evaluated per env; zero-shot on a split's held-out envs; few-shot fine-tuning
from a checkpoint (mxt_reference 5.3, 5.4).

Commands (rerunning on the same workdir resumes; the datasets under data.dataset_dir are collected once and reused):
  # in-distribution BC on explicit envs ('+' separates names), data collected from trained experts if missing
  python -m experiments.train_mxt --config=experiments/configs/mxt_base.py:envs=ant_reach_2+ant_reach_3,preset=quick,experts_root=workdirs/mxt_experts --workdir=workdirs/mxt_bc
  # zero-shot: train on a split's train_envs, evaluate its held-out test_envs
  python -m experiments.train_mxt --config=experiments/configs/mxt_base.py:mode=zero_shot,split=ant_reach_zs_5,preset=full --workdir=workdirs/mxt_zs5
  # few-shot: fine-tune the zero-shot checkpoint on 4 demonstrations of each held-out env (a new workdir)
  python -m experiments.train_mxt --config=experiments/configs/mxt_base.py:mode=few_shot,split=ant_reach_zs_5,source_workdir=workdirs/mxt_zs5,num_demos=4 --workdir=workdirs/mxt_fs5
  # the MLP baseline on the flat padded observation
  python -m experiments.train_mxt --config=experiments/configs/mxt_mlp.py:envs=ant_reach_2+ant_reach_3 --workdir=workdirs/mxt_mlp

Config arguments: preset (quick | full), mode (train | zero_shot | few_shot), split (a morphology.splits name; '' =
use envs), envs ('+'-separated env names), model (mxt_transformer | mxt_mlp), obs_config ('' = the model's default:
mtg_v2_base_m, or flat for the MLP), seed, dataset_dir, experts_root ('' = datasets must exist), source_workdir,
num_demos, steps (train.num_steps). Every field's rule is in `FIELDS` and `conflicts` below the defaults;
`morphology.distill.validate_config` applies them (and the registry names) before any work.

Presets:
  full   the reference's BC (mxt_reference 5.3): 3 post-LN layers, width 256, 2 heads, FF 512, sqrt(F) embedding
         scale, learned positions; Adam 3e-4 after an element-wise clip at 0.1; batch 256; 1e5 steps; evaluation
         every 1e4 steps with 128 episodes of 1000 steps per env; 12 expert episodes collected per env. A GPU job.
  quick  a CPU smoke run: 2 layers, width 64, batch 64, 2000 steps, 8 evaluation episodes of 200 steps.
Expected result: these presets alone claim none; the measured quick pipeline (experts -> data -> these runs with
the overrides of experiments/configs/mxt_pipeline.py, 3 seeds) and its success table are in the README and in
`launch/mxt.py`'s report. The tests run the whole pipeline (collection, training, zero-shot evaluation, few-shot
fine-tuning, load_policy) on random-policy data (tests/test_distill.py).
"""

from __future__ import annotations

import ml_collections

from gdt.core.cli import Field
from gdt.core.config import parse_arg

ARGS = dict(preset="quick", mode="train", split="", envs="", model="mxt_transformer", obs_config="", seed=0,
            dataset_dir="workdirs/mxt_data", experts_root="", source_workdir="", num_demos=0, steps=0)
MODES = ("train", "zero_shot", "few_shot")
# Observation config each model reads by default (morphology.graph.OBS_CONFIGS names).
DEFAULT_OBS = {"mxt_transformer": "mtg_v2_base_m", "mxt_mlp": "flat"}

PRESETS = {
    "full": dict(
        model=dict(num_layers=3, embed_dim=256, num_heads=2, mlp_dim=512, hidden_dim=1024, num_hidden=2),
        train=dict(batch_size=256, num_steps=100_000, steps_per_call=1000, checkpoint_every=10_000),
        eval=dict(episodes=128, episode_length=0, every=10_000),
        collect_episodes=12, successful_only=False),
    "quick": dict(
        model=dict(num_layers=2, embed_dim=64, num_heads=2, mlp_dim=128, hidden_dim=256, num_hidden=2),
        train=dict(batch_size=64, num_steps=2000, steps_per_call=250, checkpoint_every=1000),
        eval=dict(episodes=8, episode_length=200, every=0),
        collect_episodes=8, successful_only=False),
}


def get_config(arg: str | None = None, **fixed) -> ml_collections.ConfigDict:
  """`fixed`: arguments a family file pins (e.g. model='mxt_mlp'); the command line can still override them."""
  a = parse_arg(arg, **dict(ARGS, **fixed))
  if a.preset not in PRESETS:
    raise ValueError(f"config argument 'preset': {a.preset!r} is not one of {sorted(PRESETS)}")
  p = PRESETS[a.preset]
  c = ml_collections.ConfigDict()
  c.preset, c.mode, c.seed = a.preset, a.mode, a.seed
  c.split = a.split  # a morphology.splits name, or '' to use `envs`
  c.envs = tuple(n for n in a.envs.split("+") if n)  # explicit envs (train mode: trained and evaluated on)
  c.obs_config = a.obs_config or DEFAULT_OBS.get(a.model, "mtg_v2_base_m")

  c.data = ml_collections.ConfigDict(dict(
      dataset_dir=a.dataset_dir,  # <dir>/<env>.npz + .json, collected once
      experts_root=a.experts_root,  # '' = the datasets must exist; else missing ones are collected from the experts
      collect_episodes=p["collect_episodes"],  # episodes collected per env
      episode_length=0,  # collection time limit (0 = the task's, 1000); episodes also end on success
      episodes_per_env=0,  # episodes used per env for training (0 = all; few_shot uses few_shot.num_demos)
      # Train (and take few-shot demonstrations) on the episodes that reached success only: the reference's
      # experts nearly always succeeded, so it kept every episode; a CPU expert that succeeds in a third of its
      # episodes also shows the student how to miss.
      successful_only=p["successful_only"],
      # Collect from experts below their acceptance threshold too (their record says so; e.g. a few-shot env whose
      # CPU expert succeeds in a third of its episodes, with successful_only).
      allow_rejected_experts=False,
      seed=a.seed))

  m = p["model"]
  c.model = ml_collections.ConfigDict(dict(
      name=a.model,  # a gdt.core.checkpoint.MODELS name
      # MxtTransformer (mxt_reference 4)
      num_layers=m["num_layers"], embed_dim=m["embed_dim"], num_heads=m["num_heads"], mlp_dim=m["mlp_dim"],
      dropout_rate=0.0, norm="post", scale_embedding=True, learned_positions=True,
      # MxtMLP (mlp_1024_1024 in full)
      hidden_dim=m["hidden_dim"], num_hidden=m["num_hidden"]))

  t = p["train"]
  c.train = ml_collections.ConfigDict(dict(
      optimizer="adam_clip",  # a gdt.core.trainer.OPTIMIZERS name; adam_clip: the reference's clip(0.1) + adam
      learning_rate=3e-4, grad_clip=0.1,  # adam_clip: element-wise clip of each gradient entry
      warmup_steps=0, weight_decay=0.0, grad_clip_norm=1.0,  # read by adamw_warmup only
      batch_size=t["batch_size"], num_steps=a.steps or t["num_steps"], steps_per_call=t["steps_per_call"],
      checkpoint_every=t["checkpoint_every"], max_checkpoints=3,
      legacy_loss=False,  # fidelity flag: the reference's 0.5 * mean over all padded tokens (quirk 2)
      shard_data=False))  # rows split over the devices instead of replicated (as in gdt_base; may change on resume)

  e = p["eval"]
  c.eval = ml_collections.ConfigDict(dict(
      envs=(),  # evaluated envs; () = the mode's (train: the trained envs; zero_shot: the split's test_envs; few_shot:
      # the fine-tuned envs)
      episodes=e["episodes"],  # per env, batched
      episode_length=e["episode_length"],  # 0 = the task's (1000)
      every=e["every"],  # evaluate during training every this many steps (0 = only at the end)
      chunk_steps=100))

  c.few_shot = ml_collections.ConfigDict(dict(source_workdir=a.source_workdir, num_demos=a.num_demos))
  return c


# The rule of every field above, read by morphology.distill.validate_config before anything is loaded or written.
# Checked there against the code: model.name, obs_config (and that it suits the model), train.optimizer, split and
# env names (registries, eval.envs included), few_shot.source_workdir (its checkpoint's model must be this config's).
_POSITIVE = Field(int, ge=1)
FIELDS = {
    "preset": Field(str, choices=tuple(PRESETS)), "mode": Field(str, choices=MODES),
    "seed": Field(int, ge=0, lt=2**31 - 1), "split": Field(str), "envs": Field(tuple, items=str),
    "obs_config": Field(str, nonempty=True),
    "data.dataset_dir": Field(str, nonempty=True), "data.experts_root": Field(str),
    "data.collect_episodes": _POSITIVE, "data.episode_length": Field(int, ge=0), "data.episodes_per_env": Field(int, ge=0),
    "data.successful_only": Field(bool), "data.allow_rejected_experts": Field(bool),
    "data.seed": Field(int, ge=0, lt=2**31 - 1),
    "model.name": Field(str, nonempty=True), "model.num_layers": _POSITIVE, "model.embed_dim": _POSITIVE,
    "model.num_heads": _POSITIVE, "model.mlp_dim": _POSITIVE, "model.dropout_rate": Field(float, ge=0, lt=1),
    "model.norm": Field(str, choices=("pre", "post")), "model.scale_embedding": Field(bool),
    "model.learned_positions": Field(bool), "model.hidden_dim": _POSITIVE, "model.num_hidden": _POSITIVE,
    "train.optimizer": Field(str, nonempty=True), "train.learning_rate": Field(float, gt=0, le=1),
    "train.grad_clip": Field(float, gt=0), "train.warmup_steps": Field(int, ge=0),
    "train.weight_decay": Field(float, ge=0), "train.grad_clip_norm": Field(float, gt=0),
    "train.batch_size": _POSITIVE, "train.num_steps": _POSITIVE, "train.steps_per_call": _POSITIVE,
    "train.checkpoint_every": _POSITIVE, "train.max_checkpoints": Field(int, ge=1, none=True),
    "train.legacy_loss": Field(bool),
    "train.shard_data": Field(bool),
    "eval.envs": Field(tuple, items=str), "eval.episodes": _POSITIVE, "eval.episode_length": Field(int, ge=0), "eval.every": Field(int, ge=0),
    "eval.chunk_steps": _POSITIVE,
    "few_shot.source_workdir": Field(str), "few_shot.num_demos": Field(int, ge=0),
}


# Fields added after runs were recorded -> the value that reproduces what those runs did (read through
# gdt.core.workdir.with_added_fields when a run is resumed or found finished).
ADDED_FIELDS = {"data.allow_rejected_experts": False}


def conflicts(c) -> list[tuple[str, str]]:
  """(field, why) of every set of values in `c` that cannot work together; each value already obeys FIELDS."""
  out = []
  if c.mode == "zero_shot" and not c.split:
    out.append(("split", "mode=zero_shot trains on a split's train_envs and evaluates its test_envs: name a split"))
  if c.mode == "train" and not (c.envs or c.split):
    out.append(("envs", "mode=train needs envs (or a split, whose train_envs are used)"))
  if c.mode == "few_shot":
    if not c.few_shot.source_workdir:
      out.append(("few_shot.source_workdir", "mode=few_shot fine-tunes a trained checkpoint: name its workdir"))
    if c.few_shot.num_demos < 1:
      out.append(("few_shot.num_demos", "mode=few_shot needs >= 1 demonstration per env"))
    if not (c.envs or c.split):
      out.append(("envs", "mode=few_shot needs envs (or a split, whose finetune_envs are used)"))
  if c.mode != "few_shot" and (c.few_shot.source_workdir or c.few_shot.num_demos):
    out.append(("few_shot.source_workdir", f"only read with mode=few_shot (mode is {c.mode!r})"))
  if c.mode == "few_shot" and c.few_shot.num_demos > c.data.collect_episodes and c.data.experts_root:
    out.append(("few_shot.num_demos", f"{c.few_shot.num_demos} demonstrations but data.collect_episodes="
                                      f"{c.data.collect_episodes} would be collected"))
  if c.model.embed_dim % c.model.num_heads:
    out.append(("model.num_heads", f"model.embed_dim={c.model.embed_dim} does not split into {c.model.num_heads} "
                                   "heads"))
  t = c.train
  if t.checkpoint_every % t.steps_per_call and t.checkpoint_every < t.num_steps:
    out.append(("train.checkpoint_every", f"{t.checkpoint_every} is not a multiple of train.steps_per_call="
                                          f"{t.steps_per_call}: checkpoints are written between calls only"))
  if c.eval.every and c.eval.every % t.steps_per_call:
    out.append(("eval.every", f"{c.eval.every} is not a multiple of train.steps_per_call={t.steps_per_call}: "
                              "evaluations run between calls only"))
  return out
