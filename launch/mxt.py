"""Run the MxT-Bench pipeline end to end: experts, expert data, distillation, zero-shot, few-shot, report.

  python -m launch.mxt --config=experiments/configs/mxt_pipeline.py:preset=quick --workdir=workdirs/mxt_quick \
      [--experts_root=DIR] [--dry_run | --report_only]

Stages, each resumed from its files and skipped when finished and unchanged:
  1. experts (`morphology.experts.train_experts`) of every env the runs touch, under --experts_root (default
     <workdir>/experts); a root holding other experts' settings is refused by its config.json;
  2. distillation runs (`morphology.distill.train_and_evaluate`) in <workdir>/runs/<kind>_<model>_s<seed>: `indist`
     trains and evaluates on the pipeline's envs, `zs` trains on its split's train_envs and evaluates the held-out
     ones (when those are the pipeline's envs, a transferred model is trained once: its zs run is evaluated on both
     and stands for its indist run), `fs` fine-tunes the zs run of the same model and seed on `num_demos` demonstrations of each held-out env,
     `scratch` trains on the same demonstrations from a random init; the expert data are collected once into
     <workdir>/data;
  3. the report (<workdir>/report/mxt.{md,csv}, success.png): the experts' success, each method's success (mean ±
     std over seeds) and its share of the expert data's success, final/initial distance; the wall time per stage.
Every run prints the `experiments.train_mxt` command that reruns it alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import time
from typing import Callable, Sequence

import numpy as np
from absl import flags
from ml_collections import config_flags

from experiments.configs import mxt_base, mxt_pipeline
from gdt.core import cli, runtime
from gdt.core.workdir import atomic_write_bytes, config_diff, config_to_dict, format_seconds, with_added_fields
from launch.paper import load_config
from morphology import data as mxt_data
from morphology import splits

RUNS_DIR, DATA_DIR, REPORT_DIR, EXPERTS_DIR = "runs", "data", "report", "experts"
TIMINGS_FILE = "timings.json"  # wall seconds of each stage's last invocation, and of the last whole pipeline
# Run kinds -> the distillation mode: in distribution, zero-shot, few-shot fine-tuned from the zero-shot run, and the
# same few demonstrations trained from scratch (what the zero-shot pretraining is worth).
KINDS = {"indist": "train", "zs": "zero_shot", "fs": "few_shot", "scratch": "train"}


@dataclasses.dataclass(frozen=True)
class Run:
  kind: str
  model: str
  seed: int

  @property
  def mode(self) -> str:
    return KINDS[self.kind]

  @property
  def name(self) -> str:
    return f"{self.kind}_{self.model}_s{self.seed}"


def shares_training(c) -> bool:
  """Whether the in-distribution envs are the split's training envs: a transferred model's zero-shot run is then
  the same training as its in-distribution run, so it is trained once and evaluated on both env sets."""
  return set(c.envs) == set(splits.get_split(c.split).train_envs)


def indist_kind(c, model: str) -> str:
  """The run kind whose evaluation holds `model`'s in-distribution rows."""
  return "zs" if shares_training(c) and model in c.transfer_models else "indist"


def plan(c) -> list[Run]:
  """Every distillation run, in an order where a few-shot run follows its zero-shot source."""
  runs = [Run("indist", model, seed) for model in c.models for seed in c.seeds if indist_kind(c, model) == "indist"]
  return runs + [Run(kind, model, seed) for model in c.transfer_models for seed in c.seeds
                 for kind in ("zs", "fs", "scratch")]


def run_workdir(workdir: str, run: Run) -> str:
  return os.path.join(workdir, RUNS_DIR, run.name)


def distill_spec(c, run: Run, workdir: str, experts_root: str) -> tuple[str, tuple[str, ...]]:
  """(config spec, overrides) of one run: mxt_base with the pipeline's arguments."""
  args = dict(preset=c.distill_preset, model=run.model, mode=run.mode, seed=run.seed,
              dataset_dir=os.path.join(workdir, DATA_DIR), experts_root=experts_root)
  overrides = tuple(c.distill)
  if run.kind == "indist":
    args["envs"] = "+".join(c.envs)
  elif run.kind == "scratch":
    args["envs"] = "+".join(splits.get_split(c.split).finetune_envs)
    overrides += tuple(c.few_shot) + (f"data.episodes_per_env={c.num_demos}",)
  else:
    args["split"] = c.split
  if run.kind == "zs" and shares_training(c):
    split = splits.get_split(c.split)
    overrides += ("eval.envs=" + ",".join(dict.fromkeys(split.test_envs + tuple(c.envs))),)
  if run.kind == "fs":
    args.update(source_workdir=run_workdir(workdir, Run("zs", run.model, run.seed)), num_demos=c.num_demos)
    overrides += tuple(c.few_shot)
  spec = "experiments/configs/mxt_base.py:" + ",".join(f"{k}={v}" for k, v in args.items())
  return spec, overrides


def command(spec: str, overrides: Sequence[str], workdir: str, config) -> str:
  """The shell command that reruns one run alone. Each overridden field is printed once, with its final value from
  `config` in the form ml_collections' --config.<key> flags parse: a tuple as a Python literal (its comma-separated
  override text would become a single item there)."""
  flags_ = []
  for key in dict.fromkeys(o.partition("=")[0].strip() for o in overrides):
    value = functools.reduce(lambda node, part: node[part], key.split("."), config)
    text = repr(tuple(value)) if isinstance(value, (tuple, list)) else str(value).lower() if isinstance(
        value, bool) else str(value)
    flags_.append(shlex.quote(f"--config.{key}={text}"))
  return " ".join(["python -m experiments.train_mxt", shlex.quote(f"--config={spec}"), *flags_,
                   shlex.quote(f"--workdir={workdir}")])


def eval_path(run_wd: str, mode: str) -> str:
  return os.path.join(run_wd, f"eval_{mode}.json")


def finished_rows(config, run_wd: str) -> list[dict] | None:
  """The run's evaluation rows if it finished under this very config, else None."""
  path, recorded = eval_path(run_wd, config.mode), os.path.join(run_wd, "config.json")
  if not (os.path.exists(path) and os.path.exists(recorded)):
    return None
  with open(recorded) as f:
    if config_diff(with_added_fields(json.load(f), mxt_base.ADDED_FIELDS), config_to_dict(config)):
      return None  # train_and_evaluate refuses or resumes it, naming the keys
  with open(path) as f:
    return json.load(f)


def all_envs(c) -> tuple[str, ...]:
  return tuple(dict.fromkeys(c.envs + splits.get_split(c.split).all_envs))


def validate(c) -> None:
  cli.check_fields(c, mxt_pipeline.FIELDS, defaults="experiments/configs/mxt_pipeline.py")
  try:
    splits.get_split(c.split)
  except KeyError as e:
    raise ValueError(f"config field 'split': {e.args[0]}") from None


# ---- the report ----


def data_success_of(workdir: str, env: str) -> tuple[float, int] | None:
  """(success rate, episodes) of the expert data collected for `env`, or None before it is collected."""
  path = mxt_data.dataset_path(os.path.join(workdir, DATA_DIR), env)
  if not os.path.exists(path):
    return None
  ds = mxt_data.MxtDataset.load(path)
  return float(ds.success.max(axis=1).mean()), ds.num_episodes


def _mean_std(values: Sequence[float]) -> str:
  return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) else "-"


def report(c, workdir: str, experts_root: str, results: dict[Run, list[dict]], timings: dict) -> dict[str, str]:
  """Markdown + CSV tables and a bar chart of success per env and method; -> {name: path}."""
  from morphology import experts  # noqa: PLC0415

  out_dir = os.path.join(workdir, REPORT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  expert_rows, data_success = {}, {}
  for env in all_envs(c):
    try:
      expert_rows[env] = experts.read_expert_json(experts.expert_workdir(experts_root, env))
    except FileNotFoundError:
      continue
    found = data_success_of(workdir, env)
    if found:
      data_success[env] = found

  def values(kind: str, model: str, env: str, key: str) -> list[float]:
    return [row[key] for run, rows in results.items() if run.kind == kind and run.model == model
            for row in rows if row["env"] == env]

  held_out = splits.get_split(c.split).test_envs
  sections = [("in distribution", "indist", c.envs), ("zero-shot (held-out morphology)", "zs", held_out),
              ("few-shot: fine-tuned from the zero-shot run", "fs", held_out),
              ("few-shot demonstrations only: trained from scratch", "scratch", held_out)]
  csv_rows = [["section", "env", "method", "seeds", "success_mean", "success_std", "share_of_expert_data",
               "final_over_initial_mean", "final_over_initial_std"]]
  md = [f"# MxT-Bench pipeline ({c.preset})\n",
        f"Seeds {', '.join(map(str, c.seeds))}; each run evaluated on its env(s) with its config's eval.episodes "
        f"deterministic episodes (runs/*/eval_*.json). Expert: the selected snapshot's deterministic success on its "
        f"selection episodes (expert.json) and the success of the collected expert data (unbiased by the selection). "
        f"Share = method success / expert data success. Few-shot: {c.num_demos} demonstrations per held-out env, "
        f"fine-tuned from the zero-shot run of the same model and seed, and the same demonstrations from scratch."
        + (f" The in-distribution rows of {', '.join(c.transfer_models)} come from their zero-shot runs (the same "
           f"training: the envs are the split's training envs), evaluated on both env sets." if shares_training(c)
           else "") + "\n"]
  bars = {}
  for title, kind, env_names in sections:
    md += [f"\n## {title}\n", "| env | expert (selection) | expert data | method | success | share of expert data | "
           "final / initial distance |", "|---|---|---|---|---|---|---|"]
    for env in env_names:
      sel = expert_rows.get(env)
      sel_txt = (f"{sel['success']:.3f} ({sel['episodes']} ep., seed {sel.get('seed', '?')}"
                 f"{'' if sel.get('accepted', True) else ', rejected'})" if sel else "-")
      dsucc = data_success.get(env)
      d_txt = f"{dsucc[0]:.3f} ({dsucc[1]} ep.)" if dsucc else "-"
      for model in (c.models if kind == "indist" else c.transfer_models):
        source = indist_kind(c, model) if kind == "indist" else kind
        s, r = values(source, model, env, "success_rate"), values(source, model, env, "final_over_initial")
        share = f"{np.mean(s) / dsucc[0]:.2f}" if s and dsucc and dsucc[0] > 0 else "-"
        md.append(f"| {env} | {sel_txt} | {d_txt} | {model} ({len(s)} seeds) | {_mean_std(s)} | {share} | "
                  f"{_mean_std(r)} |")
        csv_rows.append([kind, env, model, len(s), np.mean(s) if s else "", np.std(s) if s else "",
                         share if share != "-" else "", np.mean(r) if r else "", np.std(r) if r else ""])
        if s:
          bars[(f"{env}\n{kind}", model)] = (float(np.mean(s)), float(np.std(s)))
      if dsucc:
        bars[(f"{env}\n{kind}", "expert data")] = (dsucc[0], 0.0)
  md += ["\n## wall time\n", "| stage | wall time |", "|---|---|"]
  md += [f"| {k} | {format_seconds(v)} |" for k, v in timings.items()]
  paths = {"md": os.path.join(out_dir, "mxt.md"), "csv": os.path.join(out_dir, "mxt.csv")}
  atomic_write_bytes(paths["md"], ("\n".join(md) + "\n").encode())
  atomic_write_bytes(paths["csv"], "".join(",".join(map(str, r)) + "\n" for r in csv_rows).encode())
  if bars:
    paths["png"] = os.path.join(out_dir, "success.png")
    _bar_chart(paths["png"], bars, f"MxT-Bench {c.preset}: deterministic success (mean ± std over seeds)")
  return paths


def _bar_chart(path: str, bars: dict, title: str) -> None:
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  groups = list(dict.fromkeys(g for g, _ in bars))
  methods = list(dict.fromkeys(m for _, m in bars))
  width = 0.8 / len(methods)
  fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups)), 3.8))
  for i, m in enumerate(methods):
    xs = [j + (i - (len(methods) - 1) / 2) * width for j, g in enumerate(groups) if (g, m) in bars]
    ys = [bars[(g, m)] for g in groups if (g, m) in bars]
    ax.bar(xs, [y[0] for y in ys], width, yerr=[y[1] for y in ys], label=m, capsize=2)
  ax.set_xticks(range(len(groups)), groups, fontsize=8)
  ax.set_ylabel("success rate")
  ax.set_ylim(0, 1)
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# ---- the pipeline ----


def _timings(workdir: str) -> dict:
  path = os.path.join(workdir, TIMINGS_FILE)
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return {}


def run_pipeline(c, workdir: str, experts_root: str | None = None, dry_run: bool = False, report_only: bool = False,
                 log: Callable[[str], None] = print) -> dict:
  """Runs every unfinished stage; -> {'ran': run names trained, 'report': {name: path}, 'wall_s'}."""
  from morphology import distill, experts  # noqa: PLC0415

  t0 = time.perf_counter()
  validate(c)
  experts_root = experts_root or os.path.join(workdir, EXPERTS_DIR)
  runs = plan(c)
  configs = {}
  for run in runs:
    spec, overrides = distill_spec(c, run, workdir, experts_root)
    configs[run] = (load_config(spec, overrides), spec, overrides)
    distill.validate_config(configs[run][0])  # every run's config refused before any work
  expert_config = load_config(c.experts)
  missing = sorted(set(all_envs(c)) - set(expert_config.envs))
  if missing:
    expert_config.envs = tuple(expert_config.envs) + tuple(missing)
  experts.validate_config(expert_config)
  state = {run: "finished" if finished_rows(cfg, run_workdir(workdir, run)) is not None else "to run"
           for run, (cfg, _, _) in configs.items()}
  log(f"[mxt] {c.preset} in {workdir}, experts in {experts_root}: experts for {', '.join(expert_config.envs)}; "
      f"runs:\n" + "\n".join(f"  {run.name}: {state[run]}" for run in runs))
  if dry_run:
    return {"ran": [], "report": {}, "wall_s": time.perf_counter() - t0}
  os.makedirs(workdir, exist_ok=True)
  timings = _timings(workdir)

  def timed(stage: str, fn):
    start = time.perf_counter()
    out = fn()
    timings[stage] = time.perf_counter() - start
    atomic_write_bytes(os.path.join(workdir, TIMINGS_FILE), (json.dumps(timings, indent=1) + "\n").encode())
    return out

  ran = []
  if not report_only:
    timed("experts", lambda: experts.train_experts(expert_config, experts_root))  # finished ones: read back
    for i, run in enumerate(runs):
      cfg, spec, overrides = configs[run]
      run_wd = run_workdir(workdir, run)
      if finished_rows(cfg, run_wd) is not None:
        continue
      log(f"[mxt] ({i + 1}/{len(runs)}, {format_seconds(time.perf_counter() - t0)}) {run.name}: "
          f"{command(spec, overrides, run_wd, cfg)}")
      timed(f"run {run.name}", functools.partial(distill.train_and_evaluate, cfg, run_wd, log=log))
      ran.append(run.name)
  results = {run: rows for run, (cfg, _, _) in configs.items()
             if (rows := finished_rows(cfg, run_workdir(workdir, run))) is not None}
  wall = time.perf_counter() - t0
  if ran:  # a rerun that finds everything finished keeps the wall time of the one that did the work
    timings["pipeline (last invocation)"] = wall
    atomic_write_bytes(os.path.join(workdir, TIMINGS_FILE), (json.dumps(timings, indent=1) + "\n").encode())
  paths = report(c, workdir, experts_root, results, timings)
  log(f"[mxt] ran {len(ran)} of {len(runs)} runs, {len(results)} finished in the report, wall time "
      f"{format_seconds(wall)}; report: {', '.join(paths.values())}")
  return {"ran": ran, "report": paths, "wall_s": wall}


def define_flags() -> dict:
  f = {
      "config": config_flags.DEFINE_config_file("config", None, "experiments/configs/mxt_pipeline.py[:args]",
                                                lock_config=True),
      "workdir": flags.DEFINE_string("workdir", None, "pipeline directory (runs, data, report, timings)"),
      "experts_root": flags.DEFINE_string("experts_root", None, "where the experts live (default <workdir>/experts)"),
      "dry_run": flags.DEFINE_bool("dry_run", False, "list the runs and their state; run nothing"),
      "report_only": flags.DEFINE_bool("report_only", False, "run nothing; write the report of what is finished"),
  }
  flags.mark_flags_as_required(["config", "workdir"])
  return f


def main(argv, f: dict):
  del argv
  runtime.enable_compilation_cache()
  runtime.install_brax_compat()
  run_pipeline(f["config"].value, f["workdir"].value, f["experts_root"].value, f["dry_run"].value,
               f["report_only"].value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  cli.run(functools.partial(main, f=define_flags()))
