"""One-shot imitation (gdt_reference.md §3): BDT vs DT vs CDT vs BC on held-out demonstrations.

  python -m launch.paper --experiment=gdt_imitation --scale=quick --vmap_seeds   # 2 CPU cores
  python -m launch.paper --experiment=gdt_imitation --scale=full --vmap_seeds    # a GPU

Each of the 10 held-out trajectories (5 best, 5 middle by return, of the env's medium-expert data) is a
demonstration; each method gets what it conditions on from that demonstration and is scored by W1 between the
demonstration's and the rollouts' histograms of BOTH reward and x-velocity (one table each):
  BDT  its anti-causal encoder over the demonstration's states (z_t from states t-K+1 .. t+H-1);
  DT   the demonstration's return (its future reward sum / 1000 at step t, open loop);
  CDT  the demonstration's x-velocity histogram (its future histogram at step t, open loop);
  BC   nothing (the unconditioned baseline).
The data jobs are gdt_smm's (same names, so one dataset per env serves both experiments).

Scales: quick = the CPU-sized model (embed 64, 2 layers, batch 32, lr 3e-4), 2000 steps, 4 episodes per
demonstration, quick data, seeds 0-2, envs halfcheetah, hopper, walker2d (the reference's imitation envs);
full = gdt_base's paper settings (3 x 128, 100k steps), 20 episodes, full data.
Expected results: see the measured quick table in the report this writes (workdirs/paper/gdt_imitation_quick/report/).
"""

from __future__ import annotations

from experiments.paper import EXPERIMENTS, Experiment, Plan, RunJob, common, gdt_smm

ENVS = ("halfcheetah", "hopper", "walker2d")
# method label -> (config file, conditioning feature, the other scored feature)
METHODS = {
    "BDT": ("bdt", "x_velocity", "reward"),
    "DT (return)": ("dt", "reward", "x_velocity"),
    "CDT (x-vel histogram)": ("cdt", "x_velocity", "reward"),
    "BC": ("bc", "x_velocity", "reward"),
}
FEATURES = ("x_velocity", "reward")


def imitation_plan(preset: str, steps: int, overrides: tuple[str, ...], episodes: int, model: str) -> Plan:
  data = tuple(gdt_smm.data_job(env, preset) for env in ENVS)
  runs = tuple(
      RunJob(name=f"{env}_{config}_{feature}",
             config=f"experiments/configs/{config}.py:env={env},dataset={gdt_smm.DATASET},feature={feature},"
                    f"steps={steps}",
             overrides=overrides + (f"eval.score_features={other}",), seeds=gdt_smm.SEEDS, data=f"{env}_{preset}",
             eval_name="open_loop", tags=common.run_tags(env=env, method=method))
      for env in ENVS for method, (config, feature, other) in METHODS.items())
  protocol = (("seeds", ", ".join(map(str, gdt_smm.SEEDS))),
              ("data", f"{gdt_smm.DATASET} of experiments/configs/data.py preset {preset} per env ({', '.join(ENVS)})"),
              ("demonstrations", "the 5 best and 5 middle trajectories by return, held out of training"),
              ("episodes per demonstration", str(episodes)),
              ("checkpoint", f"the last one, step {steps}"),
              ("model", model),
              ("conditioning", "BDT: demo states (encoder horizon 20); DT: demo return-to-go; CDT: demo x-velocity "
                               "future histogram; BC: none; open-loop schedules"),
              ("metric", "W1 between the demonstration's and the pooled rollout steps' 30-bin histograms, per "
                         "feature, bins over the training trajectories"))
  return Plan(data=data, runs=runs, protocol=protocol)


# gdt_smm's 2000 steps were too few on the regenerated halfcheetah quick data: CDT's x-velocity W1 over the 10
# demonstrations was 0.634 ± 0.060 there, as BC's 0.632 ± 0.039 (it ignored its conditioning; module docstring).
QUICK_STEPS = 6000


def quick() -> Plan:
  return imitation_plan("quick", QUICK_STEPS, gdt_smm.QUICK, 4,
                        "embed 64, 2 layers, 1 head, batch 32, lr 3e-4 (CPU-sized)")


def full() -> Plan:
  return imitation_plan("full", gdt_smm.FULL_STEPS, gdt_smm.FULL, 20,
                        "embed 128, 3 layers, 1 head, batch 64, lr 1e-4 (gdt_base)")


METRICS = tuple(common.feature_w1(f, g) for f in FEATURES for g in common.GROUPS) + (common.return_metric("all"),)


def report(plan, results, report_dir, scale):
  return common.standard_report(plan, results, report_dir, scale, title=f"GDT one-shot imitation ({scale})",
                                rows=("env",), columns=("method",), metrics=METRICS,
                                histogram_feature=lambda r: "x_velocity")


EXPERIMENTS.register("gdt_imitation", Experiment(
    "gdt_imitation", "one-shot imitation: BDT vs DT (return) vs CDT (histogram) vs BC, W1 on reward and x-velocity",
    {"quick": quick, "full": full}, report))
