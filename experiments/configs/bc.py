"""Behaviour cloning baseline: the same trunk with a constant (learned) z, i.e. no conditioning.

Command:
  python -m experiments.train_gdt --config=experiments/configs/bc.py:env=halfcheetah,dataset=medium-expert,feature=x_velocity --workdir=workdirs/bc

Runtime: the paper size (3 layers, embed 128, batch 64, 100k steps) runs at 0.72 s/step on 2 shared CPU cores
(benchmarks/bench_train_step.py: 15.3 GFLOP/step), i.e. ~20 h on CPU; it is a GPU job. The CPU-sized run below
(embed 64, 2 layers, batch 32, lr 3e-4, 2000 steps) trains at 13-21 steps/s (~2-3 min) and evaluates 10 targets x 4
episodes x 1000 steps in ~40 s (+ ~40 s compile):
  python -m launch.seeds --configs=cdt,dt,bc --arg=env=halfcheetah,dataset=medium-expert,feature=x_velocity,\
      data_dir=workdirs/demo/data,steps=2000 --seeds=1,2 --workdir=workdirs/headline_demo --set=model.embed_dim=64 \
      --set=model.num_layers=2 --set=train.batch_size=32 --set=train.steps_per_call=250 --set=train.warmup_steps=400 \
      --set=train.learning_rate=3e-4 --set=train.checkpoint_every=2000 --set=eval.episodes_per_target=4

Measured with that CPU-sized run on the `make demo` data (halfcheetah medium-expert, 30 training / 10 held-out
trajectories), x-velocity W1 over the 10 held-out targets, mean ± std over seeds 0-2 (open-loop schedule):
  CDT 0.221 ± 0.026 (best 0.187, middle 0.255)   DT 0.287 ± 0.018 (best 0.170, middle 0.404)
  BC 0.302 ± 0.015 (best 0.301, middle 0.303)

On the quick data (workdirs/data_quick, halfcheetah medium-expert: 190 training / 10 held-out trajectories), same
CPU-sized model, 3000 steps, seeds 0-1 (workdirs/headline_quick/summary.md), W1 all targets:
  CDT 0.330 ± 0.004 (best 0.205, middle 0.455)   DT 0.312 ± 0.000 (best 0.228, middle 0.397)
  BC 0.867 ± 0.328 (best 1.031, middle 0.703): CDT beats DT on the best targets but not on the two medium-level
  middle targets (returns 456/472, W1 ~0.85 vs ~0.72), so the "CDT < DT" claim does not hold on this data yet.
"""

from experiments.configs import gdt_base


def get_config(arg=None):
  return gdt_base.get_config(arg, conditioning="none")
