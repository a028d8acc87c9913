"""The synthesized bimodal target (gdt_reference.md §2.6, the project page): CDT vs DT on forward + backflip cheetahs.

  python -m launch.paper --experiment=gdt_bimodal --scale=quick --vmap_seeds   # 2 CPU cores
  python -m launch.paper --experiment=gdt_bimodal --scale=full --vmap_seeds    # the paper protocol, a GPU

CDT (the future x-velocity histogram) and DT (its future sum / 1000) train on the union of two uni-modal datasets
(`extra_datasets`): forward-running cheetahs (halfcheetah expert) and a second behaviour with another x-velocity
mode. Each trajectory keeps its task, so the held-out targets (best and middle of each part) are rolled out in their
own env, built with the options the data recorded. The synthetic targets mix them (`eval.synthetic=mixture`): for
each weight w of (0.25, 0.5, 0.75) and each pair i, w h(forward target i) + (1 - w) h(second target i), a bimodal
x-velocity histogram no training trajectory has, rolled out in halfcheetah. CDT is fed the mixture (open loop: p*
at every step; closed loop: what is left of it); DT can only be fed the mixture's expected future x-velocity sum,
so it cannot ask for two modes. Score: W1 between the target and the pooled rollout steps' x-velocity histogram.

The second behaviour: the paper's is a backflipping cheetah (cheetah_backflip, its reward pays the backward pitch
rate, so one backward rotation per 1000-step episode adds 2 pi / dt = +126 to the return). In the quick PPO budget
it does not flip: the 1M-step quick run's sampled-action evaluation return went from -265 (random) to -52 at 287k
steps and -14 ± 14 at 717k (where it was stopped), i.e. it learnt to move its legs less, not to rotate; so the
quick scale pairs forward with standing cheetahs instead (cheetah_vel with target_velocity 0, 204,800
PPO steps, data played with the policy's mode: the best snapshot's mode return is -24 over 1000 steps, i.e.
|x-velocity| ~0.02 plus control cost, against the quick forward expert's per-step x-velocity of 1.75 ± 1.14; with
sampled actions the final snapshot still scores -144, so sampled "standing" data would spread around 0). The numbers
in this paragraph date from before commit f8128f5 (XLA's CPU emitters): on the same machine they are reproduced with
`SEQRL_NO_XLA_DEFAULTS=1` in front of the command (BUILD.md, "XLA flags and numerics"). `quick_backflip` keeps the
paper's pair at the quick scale, for when a budget that flips is found.

Scales:
  quick           quick data (experiments/configs/data.py preset quick: halfcheetah's levels, shared with gdt_smm,
                  and the standing cheetah's expert level), the CPU-sized model (embed 64, 2 layers, batch 32,
                  lr 3e-4), 6000 steps, 3 best + 2 middle held-out targets per task, 4 episodes per target, seeds 0-2.
  quick_backflip  the same with cheetah_backflip's expert level (1M PPO steps) as the second part.
  full            full data (1M transitions per level, brax's PPO settings) with cheetah_backflip, gdt_base's paper
                  model and 100k steps, 5 best + 5 middle per task, 20 episodes per target, seeds 0-2; a GPU job.
Expected result (the paper's claim): CDT's W1 to the mixtures below DT's by more than the seed std; the report says
per weight whether it is. NOT shown. Measured 2026-12-02 (`python -m launch.paper --experiment=gdt_bimodal
--scale=quick --vmap_seeds`, 15m33s on 2 otherwise idle cores with the data already generated; halfcheetah quick data
medium 634 / expert 1483, the standing cheetah's data -11.7 ± 1.7), mean ± std over seeds 0-2, open loop (closed loop
within 0.02 of it):
  mixture w = 0.25 / 0.5 / 0.75 forward: CDT 0.745 ± 0.330 / 0.599 ± 0.090 / 0.293 ± 0.013,
                                         DT  0.545 ± 0.259 / 0.663 ± 0.014 / 0.302 ± 0.011;
  held-out forward targets: W1 CDT 0.211 ± 0.008, DT 0.205 ± 0.010; mean x-velocity 1.57 / 1.58 (targets 1.77);
  held-out standing targets (mean x-velocity 0.11): CDT reaches 0.490 ± 0.495 (seeds: -0.002, 0.31, 1.17),
  DT 0.029 ± 0.043 (it stands).
So CDT is below DT at no weight by more than the seed std, and neither produces a bimodal x-velocity distribution
from a bimodal target (bimodal_<schedule>.png): given a mixture both run the whole episode, except DT seed 0 at
w = 0.25, which stands in some episodes and runs in others. Why, as far as measured: the two behaviours share only
their first steps (the same reset pose), after which the state alone tells a running from a standing cheetah, so
training gives the conditioning little to explain; no training trajectory switches behaviour, so the closed-loop
schedule asking a running cheetah to stand (or the reverse) is outside the data. At 2000 steps (`git checkout
79db9d2`, the same command) neither model followed the standing targets (CDT ran at 1.17 ± 0.37 m/s, DT at
0.70 ± 0.48). A dataset
whose trajectories switch behaviour at random times would put such transitions in the data; not built yet.
"""

from __future__ import annotations

import os

import numpy as np

from experiments.configs import data as data_configs
from experiments.paper import EXPERIMENTS, DataJob, Evaluation, Experiment, Plan, RunJob, common
from experiments.paper.gdt_smm import data_job
from gdt.core.config import apply_overrides

FORWARD, BACKFLIP, STAND_ENV = "halfcheetah", "cheetah_backflip", "cheetah_vel"
WEIGHTS = (0.25, 0.5, 0.75)  # of the forward part
METHODS = {"CDT": "cdt", "DT": "dt"}
SEEDS = (0, 1, 2)
CLOSED_LOOP = Evaluation("closed_loop", ("eval.schedule=closed_loop",))

# 2000 steps (gdt_smm's) left CDT ignoring its conditioning on regenerated quick data: asked to stand, it ran at
# 1.17 m/s (module docstring); at 6000 the conditioned models follow their targets on the halfcheetah quick data.
QUICK_STEPS = 6000
QUICK = ("model.embed_dim=64", "model.num_layers=2", "train.batch_size=32", "train.steps_per_call=250",
         "train.warmup_steps=600", "train.learning_rate=3e-4", "train.checkpoint_every=1000",
         "eval.episodes_per_target=4", "eval.best_k=3", "eval.middle_k=2")
FULL_STEPS = 100_000
FULL = ("eval.episodes_per_target=20",)


def backflip_job(preset: str) -> DataJob:
  """cheetah_backflip's expert level at a data preset (the other levels are not used here)."""
  return DataJob(f"{BACKFLIP}_{preset}_expert", f"experiments/configs/data.py:env={BACKFLIP},preset={preset}",
                 overrides=("levels=expert",))


# 20 PPO updates of 10,240 env steps, evaluated every 2: standing still is learnt long before running is.
STAND_QUICK_TIMESTEPS = 204_800
# The behaviour policy acts with its mode: PPO's sampling noise (std ~0.7 at the start) would make the "standing"
# data flail around x-velocity 0 as the random level does; the best snapshot by mode return is an early one.
STAND = ("levels=expert", "env_kwargs.target_velocity=0.0", "policy=deterministic")
SMALL_BUDGET = (f"ppo.num_timesteps={STAND_QUICK_TIMESTEPS}", "ppo.num_evals=11")  # the quick and demo presets


def stand_overrides(preset: str) -> tuple[str, ...]:
  return STAND + (SMALL_BUDGET if preset in ("quick", "demo") else ())


def stand_job(preset: str) -> DataJob:
  """A cheetah that stands still (cheetah_vel with target_velocity 0): its x-velocity is a narrow mode at 0."""
  return DataJob(f"cheetah_vel_stand_{preset}_expert", f"experiments/configs/data.py:env=cheetah_vel,preset={preset}",
                 overrides=stand_overrides(preset))


def second_env(job: DataJob) -> str:
  return job.config.split("env=")[1].split(",")[0]


def switch_job(preset: str) -> DataJob:
  """Episodes that hand over from the forward expert to the standing one (or back) at a uniformly random step
  (`gdt.data.switching`): the only trajectories whose x-velocity has both modes."""
  forward, stand = data_job(FORWARD, preset), stand_job(preset)
  return DataJob(f"{FORWARD}_stand_switch_{preset}",
                 f"experiments/configs/switch_data.py:first={FORWARD}@../{forward.name},"
                 f"second={second_env(stand)}@../{stand.name}", generator="behaviour_switch")


def bimodal_plan(preset: str, second: DataJob, steps: int, overrides: tuple[str, ...], episodes: int, targets: str,
                 model: str, switching: bool = False, histogram_input: str = "probability") -> Plan:
  """`switching`: the data also hold the forward run's medium level (x-velocity ~0.8, the future sum of a half/half
  mixture) and the switching episodes (`switch_job`). `histogram_input`: CDT's `model.histogram_input`."""
  forward = data_job(FORWARD, preset)
  env = second_env(second)
  # the second job first: the mixtures mix the data's first two tasks (the forward one, then this)
  extra = (f"{env}:expert@../{second.name}",)  # data workdirs are siblings under the data root
  data = (forward, second)
  if switching:
    switch = switch_job(preset)
    extra += (f"{FORWARD}:medium", f"{FORWARD}:switch@../{switch.name}")
    data += (switch,)
  shared = overrides + (
      "extra_datasets=" + ",".join(extra),
      "eval.synthetic=mixture", "eval.mixture_weights=" + ",".join(map(str, WEIGHTS)), "eval.score_features=")
  own = {"CDT": (f"model.histogram_input={histogram_input}",), "DT": ()}
  runs = tuple(RunJob(
      name=f"bimodal_{config}",
      config=f"experiments/configs/{config}.py:env={FORWARD},dataset=expert,feature=x_velocity,steps={steps}",
      overrides=shared + own[method], seeds=SEEDS, data=forward.name, eval_name="open_loop", evaluations=(CLOSED_LOOP,),
      tags=common.run_tags(method=method)) for method, config in METHODS.items())
  data_line = (f"expert of {FORWARD} (job {forward.name}) + expert of {env} (job {second.name}: "
               f"{', '.join(second.overrides)})")
  if switching:
    data_line += (f" + medium of {FORWARD} + switching episodes (job {switch.name}: one expert hands over to the "
                  "other at a uniform random step, its own task)")
  protocol = (("seeds", ", ".join(map(str, SEEDS))),
              ("data", f"{data_line}, experiments/configs/data.py preset {preset}"),
              ("targets", f"{targets} per task, held out of training, each rolled out in its task's env; "
                          f"mixtures w h(forward i) + (1 - w) h({env} i), w in {WEIGHTS}, rolled out in {FORWARD}"),
              ("episodes per target", str(episodes)),
              ("checkpoint", f"the last one, step {steps}"),
              ("model", f"{model}; CDT's histogram input: {histogram_input}"),
              ("schedules", "open_loop (trajectory targets: their own z_t at step t; mixtures: CDT p* at every step, "
                            "DT the expected future sum); closed_loop (updated from what was achieved)"),
              ("metric", "W1 between the target's 30-bin x-velocity histogram and the pooled rollout steps', bins "
                         "over the training trajectories of every task"))
  return Plan(data=data, runs=runs, protocol=protocol)


QUICK_MODEL = "embed 64, 2 layers, 1 head, batch 32, lr 3e-4 (CPU-sized)"


def quick() -> Plan:
  """Forward + standing cheetahs, their switching episodes and forward medium (module docstring)."""
  return bimodal_plan("quick", stand_job("quick"), QUICK_STEPS, QUICK, 4, "3 best + 2 middle", QUICK_MODEL,
                      switching=True, histogram_input="density")


def quick_no_switch() -> Plan:
  """Forward + standing cheetahs only: the quick PPO budget does not teach cheetah_backflip to flip."""
  return bimodal_plan("quick", stand_job("quick"), QUICK_STEPS, QUICK, 4, "3 best + 2 middle", QUICK_MODEL)


def quick_backflip() -> Plan:
  """The paper's pair at the quick scale: forward + cheetah_backflip (1M PPO steps)."""
  return bimodal_plan("quick", backflip_job("quick"), QUICK_STEPS, QUICK, 4, "3 best + 2 middle", QUICK_MODEL,
                      histogram_input="density")


def full() -> Plan:
  return bimodal_plan("full", backflip_job("full"), FULL_STEPS, FULL, 20, "5 best + 5 middle",
                      "embed 128, 3 layers, 1 head, batch 64, lr 1e-4 (gdt_base)")


def _aggregate(key_prefix: str):
  """The mean W1 of the evaluation's aggregate whose group starts with `key_prefix` (task labels carry options)."""
  def fn(result) -> float:
    found = [v for k, v in result.aggregates.items() if k.startswith(key_prefix)]
    return float(found[0]) if found else float("nan")
  return fn


def _second_task(prefix: str):
  """The aggregate `prefix`task=<the second task> (its label carries the env options)."""
  def fn(result) -> float:
    found = [v for k, v in result.aggregates.items() if k.startswith(f"{prefix}task=") and
             k != f"{prefix}task={FORWARD}"]
    return float(found[0]) if found else float("nan")
  return fn


# Whether a model follows its conditioning at all: the mean x-velocity its rollouts reach on each task's held-out
# targets, beside the targets' own mean.
METRICS = tuple(common.Metric(f"w1_mix{w:g}", _aggregate(f"w1_mix{w:g}")) for w in WEIGHTS) + (
    common.Metric("w1_mix", _aggregate("w1_mix")),
    common.Metric("w1_forward_targets", _aggregate(f"w1_task={FORWARD}")),
    common.Metric("w1_second_task_targets", _second_task("w1_")),
    common.Metric("x_velocity_forward_targets", _aggregate(f"mean_x_velocity_task={FORWARD}")),
    common.Metric("target_x_velocity_forward_targets", _aggregate(f"target_mean_x_velocity_task={FORWARD}")),
    common.Metric("x_velocity_second_task_targets", _second_task("mean_x_velocity_")),
    common.Metric("target_x_velocity_second_task_targets", _second_task("target_mean_x_velocity_")))


def weight_table(cell_list, evaluation: str) -> tuple[str, list[str]]:
  """Markdown rows = mixture weight (and all mixtures), columns = CDT, DT (mean ± std over seeds), and whether CDT
  is below DT by more than the larger seed std -> (table, verdict lines)."""
  found = {c.tags["method"]: c for c in cell_list if c.tags["evaluation"] == evaluation}
  lines = ["| mixture weight (forward) | CDT W1 | DT W1 | DT - CDT | larger seed std | CDT below by more? |",
           "|---|---|---|---|---|---|"]
  verdicts = []
  for metric in METRICS[:len(WEIGHTS) + 1]:
    label = metric.name[len("w1_mix"):] or "all mixtures"
    if "CDT" not in found or "DT" not in found:
      continue
    (cm, cs), (dm, ds) = found["CDT"].mean_std(metric.name), found["DT"].mean_std(metric.name)
    ok = dm - cm > max(cs, ds)
    lines.append(f"| {label} | {cm:.3f} ± {cs:.3f} | {dm:.3f} ± {ds:.3f} | {dm - cm:+.3f} | {max(cs, ds):.3f} | "
                 f"{'yes' if ok else 'no'} |")
    verdicts.append(ok)
  return "\n".join(lines) + "\n", verdicts


def bimodal_figure(path: str, results, evaluation: str, pair: int = 0) -> bool:
  """Target vs CDT's and DT's achieved x-velocity histograms of mixture pair `pair` at each weight (first seed);
  False when a method's evaluation is missing."""
  from gdt import plots  # noqa: PLC0415  (matplotlib only when a report is written)
  first = {}
  for r in sorted(results, key=lambda r: r.seed):
    if r.evaluation == evaluation:
      first.setdefault(r.run.tag["method"], r)
  if set(first) != set(METHODS):
    return False
  panels, edges = [], None
  arrays = {}
  for method, r in first.items():
    with np.load(r.npz) as z:
      arrays[method] = {k: z[k] for k in ("names", "edges_x_velocity", "target_histograms_x_velocity",
                                          "achieved_histograms_x_velocity")}
  ref = arrays["CDT"]
  names = [str(n) for n in ref["names"]]
  edges = ref["edges_x_velocity"]
  for w in WEIGHTS:
    name = f"mix{w:g}_{pair}"
    if name not in names:
      continue
    achieved = {}
    for method, a in arrays.items():
      j = [str(n) for n in a["names"]].index(name)
      achieved[method] = a["achieved_histograms_x_velocity"][j]
    panels.append((f"w = {w:g} forward (pair {pair})", ref["target_histograms_x_velocity"][names.index(name)],
                   achieved))
  plots.method_histograms(path, edges, panels, title=f"bimodal x-velocity targets, {evaluation}, seed "
                          f"{first['CDT'].seed}", xlabel="x-velocity")
  return True


def report(plan, results, report_dir, scale):
  paths = dict(common.standard_report(plan, results, report_dir, scale,
                                      title=f"GDT bimodal x-velocity targets ({scale})", rows=("method",),
                                      columns=("evaluation",), metrics=METRICS, histogram_feature=lambda r: None))
  cell_list = common.cells(results, METRICS)
  with open(paths["report_md"]) as f:
    text = [f.read()]
  for evaluation in dict.fromkeys(c.tags["evaluation"] for c in cell_list):
    table, verdicts = weight_table(cell_list, evaluation)
    text.append(f"\n## Mixture targets, {evaluation}: W1 per weight, CDT vs DT\n\n{table}\nCDT's W1 is below DT's by "
                f"more than the seed std at {sum(verdicts)} of {len(verdicts)} rows.\n")
    figure = os.path.join(report_dir, f"bimodal_{evaluation}.png")
    if bimodal_figure(figure, results, evaluation):
      paths[f"bimodal_{evaluation}_png"] = figure
      text.append(f"\n![bimodal {evaluation}](bimodal_{evaluation}.png)\n")
  common.atomic_write_bytes(paths["report_md"], "".join(text).encode())
  return paths


# ----------------------------------------------------------------------------------------------------------------
# The demo's (experiments/demo.py) pieces: the quick pair at the demo preset, one data workdir for both envs.


def demo_data_configs():
  """The demo preset's expert level of the forward cheetah and of the standing one (gdt_bimodal's quick pair)."""
  forward = data_configs.get_config(f"env={FORWARD},preset=demo")
  forward.levels = ("expert",)
  stand = apply_overrides(data_configs.get_config(f"env={STAND_ENV},preset=demo"), stand_overrides("demo"))
  return forward, stand


def demo_run_config(module, data_dir: str, steps: int, episodes: int, schedule: str):
  """The config `module` (experiments.configs.cdt / dt) on forward + standing-cheetah data in `data_dir`, shrunk to
  fit a few CPU minutes."""
  config = module.get_config(f"env={FORWARD},dataset=expert,feature=x_velocity,data_dir={data_dir},steps={steps}")
  config.extra_datasets = (f"{STAND_ENV}:expert",)
  config.model.update(embed_dim=64, num_layers=2, num_heads=1)
  config.train.update(batch_size=32, steps_per_call=250, warmup_steps=min(1000, steps // 5), learning_rate=3e-4,
                      checkpoint_every=steps)
  config.eval.update(episodes_per_target=episodes, score_features=(), best_k=2, middle_k=2, schedule=schedule,
                     synthetic="mixture", mixture_weights=WEIGHTS)
  return config


def demo_table(aggregates: dict[str, list[dict]]) -> str:
  """Rows: each mixture weight, all mixtures, each task's held-out targets; columns: each method's W1 mean ± std
  over seeds; last column: whether CDT's W1 is below DT's by more than the larger seed std."""
  methods = list(aggregates)
  keys = [(f"mixture w={w:g} forward", f"w1_mix{w:g}") for w in WEIGHTS] + [("all mixtures", "w1_mix")]
  first = aggregates[methods[0]][0]
  keys += [(f"held-out {k[len('w1_task='):]}", k) for k in first if k.startswith("w1_task=")]
  lines = ["| targets | " + " | ".join(f"{m.upper()} W1" for m in methods) + " | CDT below DT by > seed std |",
           "|---|" + "---|" * (len(methods) + 1)]
  for label, key in keys:
    stats = {m: (np.mean([a[key] for a in aggs]), np.std([a[key] for a in aggs])) for m, aggs in aggregates.items()}
    verdict = "-"
    if "cdt" in stats and "dt" in stats:
      (cm, cs), (dm, ds) = stats["cdt"], stats["dt"]
      verdict = "yes" if dm - cm > max(cs, ds) else "no"
    lines.append(f"| {label} | " + " | ".join(f"{mu:.3f} ± {sd:.3f}" for mu, sd in stats.values()) + f" | {verdict} |")
  return "\n".join(lines) + "\n"


EXPERIMENTS.register("gdt_bimodal", Experiment(
    "gdt_bimodal", "synthesized bimodal x-velocity targets: CDT vs DT on forward + standing (quick) or backflipping "
    "(full) cheetah data",
    {"quick": quick, "quick_no_switch": quick_no_switch, "quick_backflip": quick_backflip, "full": full}, report))
