"""Run several GDT-family configs over several seeds and tabulate W1 mean ± std over seeds.

  python -m launch.seeds --configs=cdt,dt,bc --arg=env=halfcheetah,dataset=medium-expert,feature=x_velocity \
      --seeds=0,1,2 --workdir=workdirs/headline [--set=train.num_steps=20000 --set=model.embed_dim=64]

Each (config, seed) trains and evaluates in `<workdir>/<config>_s<seed>` (rerunning resumes; a finished run, one with
its eval_<conditioning>.json, is not redone). `<workdir>/summary.md` gets, per config (every finished run in the sweep
directory, this invocation's or an earlier one's), the mean ± std over seeds of the mean W1 over the best targets,
the middle targets and all targets, and of the mean return.

With --vmap_seeds, the unfinished seeds of each config train together in one process, their train states vmapped in
one compiled call (`gdt.train.train_and_evaluate_seeds`); each seed's workdir is written as its own run's would be,
and its results equal its single run's up to float rounding (tests/test_seeds.py).
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import json
import os
import re

import numpy as np
from absl import flags

from gdt import train
from gdt.core import cli, runtime
from gdt.core.config import apply_overrides
from gdt.core.workdir import atomic_write_bytes, config_diff, config_to_dict, load_config

_CONFIGS = flags.DEFINE_list("configs", ["cdt", "dt", "bc"], "config names under experiments/configs")
_ARG = flags.DEFINE_string("arg", "", "config argument string shared by every config (env=...,feature=...)")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "seeds")
_SET = flags.DEFINE_multi_string("set", [], "dotted.key=value overrides applied to every config")
_WORKDIR = flags.DEFINE_string("workdir", None, "sweep directory")
_VMAP_SEEDS = flags.DEFINE_bool("vmap_seeds", False, "train the seeds of one config together, vmapped, in one call")
flags.mark_flag_as_required("workdir")

COLUMNS = ("w1_best", "w1_middle", "w1_all", "mean_return_all")


def run_config(name: str, seed: int):
  if importlib.util.find_spec(f"experiments.configs.{name}") is None:
    have = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(os.path.dirname(__file__), "..", "experiments",
                                                                             "configs")) if f.endswith(".py") and not f.startswith("_"))
    raise ValueError(f"--configs: no config {name!r} under experiments/configs (there: {', '.join(have)})")
  module = importlib.import_module(f"experiments.configs.{name}")
  arg = ",".join(filter(None, [_ARG.value, f"seed={seed}"]))
  return apply_overrides(module.get_config(arg), _SET.value)


def collect(sweep_dir: str, first: list[str] = ()) -> dict[str, list[dict]]:
  """Every finished run `<sweep_dir>/<config>_s<seed>/eval_*.json` -> {config: [aggregates per seed]}, the configs
  of `first` first (in that order), then the others sorted; earlier invocations' configs stay in the table."""
  found: dict[str, list[tuple[int, dict]]] = {}
  for path in glob.glob(os.path.join(sweep_dir, "*_s*", "eval_*.json")):
    match = re.fullmatch(r"(.+)_s(\d+)", os.path.basename(os.path.dirname(path)))
    if match and re.fullmatch(r"eval_[a-z_]+\.json", os.path.basename(path)):
      with open(path) as f:
        found.setdefault(match.group(1), []).append((int(match.group(2)), json.load(f)["aggregates"]))
  order = [n for n in first if n in found] + sorted(set(found) - set(first))
  return {name: [agg for _, agg in sorted(found[name], key=lambda x: x[0])] for name in order}


def summary(rows: dict[str, list[dict]]) -> str:
  lines = ["| config | seeds | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
  for name, aggs in rows.items():
    cells = []
    for col in COLUMNS:
      v = np.array([a[col] for a in aggs if col in a])
      cells.append(f"{v.mean():.3f} ± {v.std():.3f}" if len(v) else "-")
    lines.append(f"| {name} | {len(aggs)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def finished(workdir: str, config) -> bool:
  """True if `workdir` holds a finished run of exactly `config`; a finished run of another config raises
  (reusing it would put another experiment's numbers in this sweep's table)."""
  if not os.path.exists(os.path.join(workdir, f"eval_{config.conditioning}.json")):
    return False
  diffs = config_diff(load_config(workdir), config_to_dict(config))
  if diffs:
    raise ValueError(f"{workdir} holds a finished run of another config (keys: {', '.join(diffs)}); use another "
                     "--workdir for this sweep or remove that run")
  return True


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  runtime.install_brax_compat()
  for name in _CONFIGS.value:  # every run's config checked before any work
    for seed in map(int, _SEEDS.value):
      train.validate_config(run_config(name, seed))
  for name in _CONFIGS.value:
    todo = []  # (seed, config, workdir) of the unfinished runs
    for seed in map(int, _SEEDS.value):
      config = run_config(name, seed)
      workdir = os.path.join(_WORKDIR.value, f"{name}_s{seed}")
      if not finished(workdir, config):
        todo.append((seed, config, workdir))
        if not _VMAP_SEEDS.value:
          print(f"[seeds] {name} seed {seed} -> {workdir}", flush=True)
          train.train_and_evaluate(config, workdir)
      table = write_summary()
    if _VMAP_SEEDS.value and todo:
      seeds, configs, workdirs = zip(*todo, strict=True)
      print(f"[seeds] {name} seeds {', '.join(map(str, seeds))} vmapped -> {', '.join(workdirs)}", flush=True)
      train.train_and_evaluate_seeds(configs[0], seeds, workdirs)  # the configs differ only in `seed`
      table = write_summary()
  print(table)


def write_summary() -> str:
  """Tabulates every finished run of the sweep directory into its summary.md; returns the table."""
  table = summary(collect(_WORKDIR.value, _CONFIGS.value))
  atomic_write_bytes(os.path.join(_WORKDIR.value, "summary.md"), table.encode())
  return table


if __name__ == "__main__":
  cli.run(main)  # one-line errors (--debug for the traceback), multi-host flags, orbax's INFO logs off
