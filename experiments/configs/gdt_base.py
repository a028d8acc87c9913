"""Shared defaults of every GDT-family run (DT, CDT, BDT, BC): gdt_reference.md §5.1 hyperparameters.

Not a runnable config by itself; `dt.py`, `cdt.py`, `bdt.py` and `bc.py` call `get_config(arg, conditioning=...)`.
Config arguments (`--config=experiments/configs/cdt.py:env=hopper,feature=reward,seed=1`): env, dataset, feature,
data_dir, seed, steps (train.num_steps).

Runtime: the paper size (3 layers, embed 128, batch 64, 100k steps) runs at 0.16 s/step on 2 quiet CPU cores
(benchmarks/bench_train_step.py: 15.3 GFLOP/step, 30% of the matmul roofline), i.e. ~4.5 h on CPU. The CPU-sized
model below (embed 64, 2 layers, batch 32, lr 3e-4) trains at ~43 steps/s (13-21 on shared cores) and evaluates
10 targets x 4 episodes x 1000 steps (40k env steps) in ~10 s at ~4k env steps/s including the model.

Expected result (the issue's headline), quick data (workdirs/data_quick: halfcheetah medium-expert, spring, experts and
medium chosen by the return of the policy's mode; 190 training / 10 held-out trajectories), the CPU-sized model above
trained 3000 steps, 4 episodes per target, open-loop schedule, seeds 0-2 (workdirs/headline_quick3/summary.md;
~80 s per run on 2 quiet cores). x-velocity W1 over the 10 held-out targets, mean ± std over seeds:
  CDT 0.157 ± 0.005 (best 0.195, middle 0.119) < DT 0.214 ± 0.015 (best 0.249, middle 0.178)
  < BC 0.254 ± 0.022 (best 0.298, middle 0.211)
  python -m launch.seeds --configs=cdt,dt,bc --arg=env=halfcheetah,dataset=medium-expert,feature=x_velocity,steps=3000 \
      --seeds=0,1,2 --workdir=workdirs/headline_quick3 --set=model.embed_dim=64 --set=model.num_layers=2 \
      --set=train.batch_size=32 --set=train.steps_per_call=250 --set=train.warmup_steps=600 \
      --set=train.learning_rate=3e-4 --set=train.checkpoint_every=3000 --set=eval.episodes_per_target=4
With --set=train.dropout_prng=threefry (other dropout masks; workdirs/headline_quick2): CDT 0.163 ± 0.011 <
DT 0.217 ± 0.009 < BC 0.257 ± 0.013.
Before two fixes (DT evaluated with z 1e6 times too large; a "medium" PPO snapshot whose mode stands still) the same
runs gave CDT 0.330 > DT 0.312 on the older quick data: those numbers are void.
"""

from __future__ import annotations

import ml_collections

from gdt.core.config import parse_arg

ARGS = dict(env="halfcheetah", dataset="medium-expert", feature="x_velocity", data_dir="workdirs/data_quick", seed=0,
            steps=100_000)


def get_config(arg: str | None = None, *, conditioning: str) -> ml_collections.ConfigDict:
  a = parse_arg(arg, **ARGS)
  c = ml_collections.ConfigDict()
  c.env, c.dataset, c.feature, c.data_dir, c.seed = a.env, a.dataset, a.feature, a.data_dir, a.seed
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
      bdt_unflipped_like_reference=False))  # fidelity flag: BDT's z not flipped back (gdt_reference.md §3.2)

  c.train = ml_collections.ConfigDict(dict(
      optimizer="adamw_warmup",  # a name in gdt.core.trainer.OPTIMIZERS
      batch_size=64, num_steps=a.steps, steps_per_call=500, learning_rate=1e-4, weight_decay=1e-4,
      warmup_steps=10_000, grad_clip_norm=0.25, checkpoint_every=10_000, max_checkpoints=3,
      uniform_traj_sampling=False,  # fidelity flag: the reference samples trajectories uniformly (§8.3)
      # PRNG of the dropout masks: 'rbg' (XLA's RngBitGenerator) makes the paper-size CPU step 192 -> 161 ms
      # (benchmarks/bench_train_step.py); its masks depend on the device count, threefry's do not.
      dropout_prng="rbg"))

  c.eval = ml_collections.ConfigDict(dict(
      best_k=5, middle_k=5, episodes_per_target=20, chunk_steps=100, plots=True,
      score_features=("reward",),  # scored besides `feature` (W1 of the reward histogram too)
      schedule="open_loop",  # the reference's time-indexed target schedule; 'closed_loop' updates from what was achieved
      xvel_offset_like_gdt=False))  # fidelity flag: record the feature of the NEXT state as the reference does (§4)
  return c
