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
Measured 2026-12-02 at commit bd18f89 (before mxt_experts had env_seeds: its ant_touch_3 expert was seed 0's, rejected,
and the few-shot runs set data.allow_rejected_experts), quick, 2 otherwise idle CPU cores, experts cached under
workdirs/experts_quick (the second command above; their own measurement is in mxt_experts.py, where ant_touch_4's expert is a run with the same settings
trained in another root and copied in): 41m51s. Deterministic
success over 32 episodes of 1000 steps per env and seed, mean ± std over seeds 0, 1, 2 (expert data: 256 episodes):
  in distribution   ant_touch_2: transformer 0.573 ± 0.053, MLP 0.458 ± 0.103 (expert data 0.660)
                    ant_touch_4: transformer 0.344 ± 0.068, MLP 0.281 ± 0.051 (expert data 0.367)
  ant_touch_3       zero-shot 0.000 / 0.000, few-shot 0.031 ± 0.026 / 0.010 ± 0.015, the demos from scratch
                    0.000 / 0.021 ± 0.015 (transformer / MLP; expert data 0.285, the expert rejected at 0.312)
The transformer keeps 87-94% of the data's success in distribution; nothing transfers to the held-out morphology at
this budget. With the 2 x 64 transformer of mxt_base's quick preset (the same command at commit 4815cad, where only
the transformer was transferred): in distribution 0.271 ± 0.208 / 0.156 ± 0.102, zero-shot 0.021 ± 0.015, few-shot
0.062 ± 0.026, scratch 0.000; a probe of 3 x 128 on the same data (seed 0) reached loss 0.035 at 18000 steps where
2 x 64 sat at 0.08, hence the quick sizes here. Scratch probes on ant_touch_4 alone (2 x 64, seed 0): trained on
all 64 collected episodes, successful or not, 0/32 at 4000 and 8000 steps; on the successful ones of 256, 5/32 at
12000 steps; hence `data.successful_only`.
The current quick preset (ant_touch_3's expert with seed 1, accepted at 0.562; its data 0.570), the first command
above at commit 9ca0540 (2026-12-02, experts trained in the pipeline's root, 1h49m on cores shared with other jobs for
part of it; transformer zero-shot runs 18-19 min each): the MLP (seeds 0-2) identical in distribution (0.458 ± 0.103,
0.281 ± 0.051), ant_touch_3 zero-shot 0.000, few-shot 0.052 ± 0.039, scratch 0.031 ± 0.026; the transformer, seeds 0
and 1 only (seed 2 unfinished): in distribution 0.422 ± 0.016 / 0.234 ± 0.016, zero-shot 0.016 ± 0.016, few-shot
0.016 ± 0.016, scratch 0.000. The transformer's in-distribution success is below the table above on the same data;
not explained yet.
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
