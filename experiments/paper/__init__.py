"""The GDT paper's experiments, one declarative module each, run by `python -m launch.paper`.

  python -m launch.paper --experiment=gdt_smm --scale=quick [--workdir=workdirs/paper/gdt_smm_quick] [--dry_run]

An experiment module (`experiments/paper/<name>.py`, found by `load_all`) registers an `Experiment` in
`EXPERIMENTS`. For a scale it returns a `Plan`: the data jobs (a data config file + overrides -> one data workdir
under the data root, `<data_root>/<DataJob.name>`, shared by every experiment that names the same job), the
training runs (a GDT config file + overrides + seeds -> `<workdir>/runs/<RunJob.name>_s<seed>`, trained and
evaluated by `gdt.train.train_and_evaluate` / `train_and_evaluate_seeds`, plus extra `Evaluation`s of the trained
checkpoint with other eval settings) and the protocol lines of the report's header. Its `report` turns the
finished runs' evaluations (`Result`s) into Markdown + CSV tables and PNG figures (`experiments.paper.common` has
the shared pieces). Scheduling, resuming and refusing changed configs is the driver's (`launch.paper`).

Example (an experiment with one data job, CDT and BC on it, 2 seeds):

  from experiments.paper import EXPERIMENTS, DataJob, Experiment, Plan, RunJob, common

  def plan(scale):
    data = DataJob("halfcheetah_quick", "experiments/configs/data.py:env=halfcheetah,preset=quick")
    runs = tuple(RunJob(f"{m}", f"experiments/configs/{m}.py:env=halfcheetah,dataset=medium-expert",
                        seeds=(0, 1), data=data.name, tags=(("method", m),)) for m in ("cdt", "bc"))
    return Plan(data=(data,), runs=runs, protocol=(("seeds", "0, 1"),))

  EXPERIMENTS.register("example", Experiment("example", "CDT vs BC", {"quick": plan}, common.standard_report))
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
from typing import Callable, Mapping, Sequence

from gdt.core.registry import Registry

DATA_ROOT = "workdirs/paper/data"  # data workdirs are shared by every experiment (identical jobs, one workdir)
RUNS_DIR = "runs"  # <workdir>/runs/<run>_s<seed>
REPORT_DIR = "report"  # <workdir>/report/{report.md, *.csv, *.png}
EVALS_DIR = "evals"  # <run workdir>/evals/<evaluation>/ holds an extra evaluation's config.json and eval files


@dataclasses.dataclass(frozen=True)
class DataJob:
  """A dataset to generate: `config` = 'experiments/configs/<file>.py[:args]', `overrides` dotted.key=value,
  run by the `generator` (a name in `DATA_GENERATORS`; 'brax_ppo' = `gdt.data.generation.generate`, what
  `experiments.generate_data` runs) into `<data_root>/<name>`; `needs` names the data jobs whose datasets it reads
  (they come before it in the plan). Two jobs of one name must be identical."""
  name: str
  config: str
  overrides: tuple[str, ...] = ()
  generator: str = "brax_ppo"
  needs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """An extra evaluation of a trained run's latest checkpoint: the run's config with `overrides` (eval.* keys
  only) applied, written into `<run workdir>/evals/<name>/`."""
  name: str
  overrides: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class RunJob:
  """A training run per seed: `config` = 'experiments/configs/<file>.py[:args]' (as `experiments.train_gdt`
  takes it), then `overrides` (dotted.key=value), then `seed`, then `data_dir` = the workdir of the data job named
  `data` (None: the config's own data_dir); `needs` names the further data jobs it reads (`extra_datasets`). Its own
  evaluation is named `eval_name`; `evaluations` are extra ones.
  `tags` are the run's coordinates in the report's tables, e.g. (('env', 'hopper'), ('method', 'CDT'))."""
  name: str
  config: str
  overrides: tuple[str, ...] = ()
  seeds: tuple[int, ...] = (0, 1, 2)
  data: str | None = None
  needs: tuple[str, ...] = ()
  eval_name: str = "default"
  evaluations: tuple[Evaluation, ...] = ()
  tags: tuple[tuple[str, str], ...] = ()

  @property
  def tag(self) -> dict[str, str]:
    return dict(self.tags)

  @property
  def reads(self) -> tuple[str, ...]:
    """Every data job the run reads: `data`, then `needs`."""
    return ((self.data,) if self.data is not None else ()) + self.needs

  def evaluation_names(self) -> list[str]:
    return [self.eval_name] + [e.name for e in self.evaluations]


@dataclasses.dataclass(frozen=True)
class Plan:
  """What one scale of an experiment runs: data jobs first, then the runs; `protocol` = (key, value) lines of the
  report's header (seeds, episodes per target, targets, checkpoint, data, scale, ...)."""
  data: tuple[DataJob, ...]
  runs: tuple[RunJob, ...]
  protocol: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
  """One finished evaluation of one seed of a run: `summary` is its eval_<conditioning>.json
  ({'targets': rows, 'aggregates': ..., 'protocol': ..., 'feature': ..., 'conditioning': ...}); `npz` the path of the
  raw arrays (achieved features, target and achieved histograms, edges)."""
  run: RunJob
  seed: int
  evaluation: str
  workdir: str
  summary: dict

  @property
  def npz(self) -> str:
    return os.path.join(self.workdir, f"eval_{self.summary['conditioning']}.npz")

  @property
  def aggregates(self) -> dict:
    return self.summary["aggregates"]


# (plan, finished results, report dir, scale) -> {label: path} of the files written
ReportFn = Callable[[Plan, Sequence[Result], str, str], Mapping[str, str]]


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A registered experiment: `plans` maps a scale ('quick', 'full', ...) to a function returning its `Plan`."""
  name: str
  description: str
  plans: Mapping[str, Callable[[], Plan]]
  report: ReportFn

  def plan(self, scale: str) -> Plan:
    if scale not in self.plans:
      raise ValueError(f"experiment {self.name!r} has no scale {scale!r}; scales: {', '.join(sorted(self.plans))}")
    return self.plans[scale]()


EXPERIMENTS: Registry[Experiment] = Registry("paper experiment")

# generator name -> fn(config, workdir): writes <workdir>/datasets/<env>-<level>.npz (and may resume in workdir)
DATA_GENERATORS: Registry[Callable] = Registry("data generator")


@DATA_GENERATORS.register("brax_ppo")
def _brax_ppo(config, workdir: str) -> None:
  from gdt.data import generation  # noqa: PLC0415  (brax only when data is generated)
  generation.generate(config, workdir)


@DATA_GENERATORS.register("behaviour_switch")
def _behaviour_switch(config, workdir: str) -> None:
  from gdt.data import switching  # noqa: PLC0415  (brax only when data is generated)
  switching.generate(config, workdir)


@DATA_GENERATORS.register("scripted")
def _scripted(config, workdir: str) -> None:
  from gdt.data import scripted  # noqa: PLC0415  (brax only when data is generated)
  scripted.generate(config, workdir)


def load_all() -> list[str]:
  """Imports every experiment module of this package (each registers itself); returns the registered names."""
  for module in pkgutil.iter_modules(__path__):
    if module.name.startswith("gdt_"):
      importlib.import_module(f"{__name__}.{module.name}")
  return EXPERIMENTS.names()


def get(name: str) -> Experiment:
  load_all()
  return EXPERIMENTS.get(name)

