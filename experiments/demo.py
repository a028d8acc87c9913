"""`make demo`: the paper's claim at CPU size: CDT matches x-velocity distributions that DT is told nothing about.

  python -m experiments.demo --workdir=workdirs/demo [--dry_run]

It runs `gdt_bimodal --scale=demo` (experiments/paper/gdt_bimodal.py) with its data inside the workdir, seeds 0-2
trained together:
  1. data (`<workdir>/data`): a halfcheetah PPO run's expert (forward running), scripted standing and rocking
     cheetahs (`gdt.data.scripted`: no torque, or a sine on every joint that rocks the cheetah in place; both have
     mean x-velocity ~0, one a spike at 0, the other spread over about -2..2 m/s), and episodes in which the runner
     hands over to the standing cheetah, or the reverse, at a random step;
  2. CDT (the future x-velocity histogram, read as its cumulative sum) and DT (the future x-velocity sum) on all of
     it, 3000 steps of a small model, a quarter of the training windows from an episode's first step
     (`<workdir>/runs`);
  3. each seed rolled out in one batched scan for the held-out trajectories of each task and for synthetic
     mixtures w h(forward) + (1 - w) h(standing), w = 0.25, 0.5, 0.75, closed loop (each achieved step uses up the
     nearest target mass);
  4. `<workdir>/report/`: summary.md (the protocol; standing vs rocking targets: a DT told the same sum for both
     cannot score below half their W1 apart on a pair, CDT can; W1 per mixture weight; mean ± std over seeds and
     whether CDT is below DT by more than the seed std; how the rollouts divide their steps between the modes;
     whether each model follows its held-out targets), report.md and CSVs with every metric, and PNGs (target vs
     achieved histograms of both models).
Rerunning the command resumes and redoes nothing that is finished; the same machine gives the same table.
The measured result and its wall time are in README.md ("make demo").
"""

from __future__ import annotations

import functools
import os

from absl import flags

import experiments.paper as paper
from gdt.core import cli, runtime
from launch import paper as driver

EXPERIMENT, SCALE = "gdt_bimodal", "demo"



def define_flags() -> dict:
  """Defined when run as a program only, so that importing this module defines no flags."""
  return {"workdir": flags.DEFINE_string("workdir", "workdirs/demo", "demo directory (its data in <workdir>/data)"),
          "dry_run": flags.DEFINE_bool("dry_run", False, "list the demo's jobs and which are finished; run nothing")}


def run_demo(workdir: str, dry_run: bool = False, log=print) -> dict:
  """`launch.paper`'s run of gdt_bimodal at the demo scale, its data under `workdir`; returns its summary."""
  return driver.run_experiment(paper.get(EXPERIMENT), SCALE, workdir, data_root=os.path.join(workdir, "data"),
                               vmap_seeds=True, dry_run=dry_run, log=log)


def main(argv, f: dict):
  del argv
  runtime.enable_compilation_cache()
  runtime.install_brax_compat()
  log = lambda s: print(s, flush=True)  # noqa: E731
  out = run_demo(f["workdir"].value, f["dry_run"].value, log)
  summary = out["report"].get("summary_md")
  if summary:
    with open(summary) as fh:
      print("\n" + fh.read())
    print(f"[demo] wall time {out['wall_s'] / 60:.1f} min; report in {os.path.dirname(summary)}")


if __name__ == "__main__":
  cli.run(functools.partial(main, f=define_flags()))  # one-line errors (--debug for the traceback), multi-host flags, orbax's INFO logs off
