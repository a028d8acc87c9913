"""The MxT-Bench pipeline as one command: PPO experts -> expert data -> behaviour distillation of the token
transformer and the MLP baseline in distribution (3 seeds) -> zero-shot on a held-out morphology -> few-shot
fine-tuning on it (and its demonstrations alone, from scratch) -> one report (mxt_reference 5.1-5.4).

  python -m launch.mxt --config=experiments/configs/mxt_pipeline.py:preset=quick --workdir=workdirs/mxt_quick
  # reuse experts trained elsewhere (the experts config must match theirs):
  python -m launch.mxt --config=experiments/configs/mxt_pipeline.py:preset=quick --workdir=workdirs/mxt_quick \
      --experts_root=workdirs/experts_quick

Config arguments: preset (quick | full), seeds ('+'-separated). Each stage's config is an ordinary config file of its
own entry point plus overrides, so every run of the pipeline can also be rerun alone with the command the launcher
prints.

Presets:
  quick  experts: mxt_experts.py:preset=quick (ant_touch_2/3/4, ant_touch_3 with seed 1). Distillation: the transformer with 3 layers, width
         128, FF 256, 2 heads (mxt_base's quick 2 x 64 fitted the data worse: see Measured), the MLP 2 x 256;
         256 expert episodes collected per env and only the successful ones trained on,
         24000 steps of batch 64, 32 evaluation episodes of 1000 steps per env; the transformer and the MLP in
         distribution on ant_touch_2 and ant_touch_4; both zero-shot on
         `ant_touch_small_zs_3` (train on 2 and 4 legs, hold out 3), then few-shot on ant_touch_3 from that
         checkpoint with 4 successful demonstrations and 2000 fine-tuning steps, and the same demonstrations and
         steps from a random init.
  full   the reference's settings (mxt_experts full: ant reach and touch 2..6; mxt_base full; split ant_reach_zs_5).
         For accelerators; not run here.
Measured (quick, the first command above, 2026-12-02/03, experts trained in the pipeline's root: 0.906 / 0.562 /
0.656 selection success, expert data 0.660 / 0.570 / 0.367 for ant_touch_2/3/4), deterministic success over 32
episodes of 1000 steps per env and seed, mean ± std over seeds 0, 1, 2 (transformer / MLP):
  in distribution   ant_touch_2: 0.510 ± 0.126 / 0.458 ± 0.103; ant_touch_4: 0.260 ± 0.039 / 0.281 ± 0.051
  ant_touch_3       zero-shot 0.052 ± 0.053 / 0.000, few-shot 0.021 ± 0.015 / 0.052 ± 0.039, the demos from scratch
                    0.000 / 0.031 ± 0.026
Both keep 69-77% of the data's success in distribution; nothing transfers to the held-out morphology at this budget.
Repeated runs are bit-identical on one machine (checked). Wall time: experts about 75 min on 2 idle cores (mxt_experts.py),
distillation with the experts cached 41m51s on 2 idle cores at commit bd18f89 (the same runs): about 2 h in all.
Why these sizes and `data.successful_only`: chosen by scratch runs of the distillation alone (not commands of this
repository, so their numbers are not quoted here): mxt_base's quick 2 x 64 plateaued at a higher loss than 3 x 128 on
this data, and training on every collected episode, failed ones included, gave no successes at the quick budget.
Rerun them with the pipeline's own stage command (printed by the launcher) plus `--config.model.embed_dim=64
--config.model.num_layers=2` or `--config.data.successful_only=false` and a --workdir of its own.
"""

from __future__ import annotations

import ml_collections

from gdt.core.cli import Field
from gdt.core.config import parse_arg

ARGS = dict(preset="quick", seeds="0+1+2")

PRESETS = {
    "quick": dict(
        experts="experiments/configs/mxt_experts.py:preset=quick",
        envs=("ant_touch_2", "ant_touch_4"), split="ant_touch_small_zs_3", num_demos=4,
        distill_preset="quick",
        distill=("data.collect_episodes=256", "data.successful_only=true", "train.num_steps=24000",
                 "train.checkpoint_every=4000", "eval.episodes=32", "eval.episode_length=0",
                 "model.embed_dim=128", "model.num_layers=3", "model.mlp_dim=256"),
        few_shot=("train.num_steps=2000", "train.checkpoint_every=1000"),
        models=("mxt_transformer", "mxt_mlp"), transfer_models=("mxt_transformer", "mxt_mlp")),
    "full": dict(
        experts="experiments/configs/mxt_experts.py:preset=full",
        envs=tuple(f"ant_{task}_{n}" for task in ("reach", "touch") for n in range(2, 7)), split="ant_reach_zs_5",
        num_demos=4, distill_preset="full", distill=(), few_shot=("train.num_steps=10000",),
        models=("mxt_transformer", "mxt_mlp"), transfer_models=("mxt_transformer", "mxt_mlp")),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, **ARGS)
  if a.preset not in PRESETS:
    raise ValueError(f"config argument 'preset': {a.preset!r} is not one of {sorted(PRESETS)}")
  p = PRESETS[a.preset]
  c = ml_collections.ConfigDict()
  c.preset = a.preset
  c.seeds = tuple(int(s) for s in str(a.seeds).split("+") if s != "")
  c.experts = p["experts"]  # the experts' config spec (file:args), trained under --experts_root
  c.envs = p["envs"]  # in-distribution: trained and evaluated on
  c.split = p["split"]  # zero-shot: its train_envs -> its test_envs; few-shot: its finetune_envs
  c.num_demos = p["num_demos"]  # few-shot demonstrations per fine-tuned env
  c.models = p["models"]  # gdt.core.checkpoint.MODELS names trained in distribution
  c.transfer_models = p["transfer_models"]  # ... and zero-shot, then few-shot
  c.distill_preset = p["distill_preset"]  # mxt_base preset
  c.distill = p["distill"]  # dotted overrides of every distillation config
  c.few_shot = p["few_shot"]  # ... then of the few-shot ones (fine-tuning steps count from the source's params)
  return c


FIELDS = {
    "preset": Field(str, choices=tuple(PRESETS)), "seeds": Field(tuple, items=int, nonempty=True),
    "experts": Field(str, nonempty=True), "envs": Field(tuple, items=str, nonempty=True),
    "split": Field(str, nonempty=True), "num_demos": Field(int, ge=1), "models": Field(tuple, items=str, nonempty=True),
    "transfer_models": Field(tuple, items=str), "distill_preset": Field(str, nonempty=True),
    "distill": Field(tuple, items=str), "few_shot": Field(tuple, items=str),
}
