"""Shared pieces of the paper experiments: run/data job builders, metrics of a `Result`, the standard report.

`standard_report(plan, results, report_dir, scale, ...)` writes, from the finished evaluations:
  - `per_seed.csv`: one row per (run, evaluation, seed) with every metric;
  - `results.csv`: one row per (run, evaluation): mean and std over its seeds of every metric (numpy's mean and
    std, ddof=0);
  - `report.md`: the protocol header (scale, seeds, episodes per target, targets, checkpoint, data, ...) and one
    table per metric, rows x columns of tag values, cells 'mean ± std' over seeds;
  - `w1_bars.png`: one panel per value of the first row tag (e.g. env), bars of W1 per column (method/evaluation)
    with the std over seeds as error bars;
  - `histograms_<run>_<evaluation>.png`: target vs achieved histograms of a few targets (first seed).

  paths = standard_report(plan, results, "workdirs/x/report", "quick", rows=("env", "feature"),
                          columns=("method", "evaluation"), metrics=SMM_METRICS)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import Callable, Mapping, Sequence

import numpy as np

from experiments.paper import Plan, Result
from gdt.core.workdir import atomic_write_bytes

GROUPS = ("best", "middle", "all")


# ----------------------------------------------------------------------------------------------------------------
# Metrics of one evaluation


def w1(result: Result, feature: str, group: str = "all") -> float:
  """Mean W1 over the `group` targets of `feature`: the conditioning feature's 'w1_<group>' or an extra scored
  feature's 'w1_<feature>_<group>'; NaN when the evaluation did not score `feature`."""
  key = f"w1_{group}" if result.summary["feature"] == feature else f"w1_{feature}_{group}"
  return float(result.aggregates.get(key, float("nan")))


def mean_return(result: Result, group: str = "all") -> float:
  return float(result.aggregates[f"mean_return_{group}"])


def mean_length(result: Result, group: str = "all") -> float:
  """Mean rollout episode length over the `group` targets (rows named '<group>_...'; 'all': every row)."""
  rows = [r for r in result.summary["targets"] if group == "all" or r["name"].startswith(f"{group}_")]
  return float(np.mean([r["mean_length"] for r in rows])) if rows else float("nan")


@dataclasses.dataclass(frozen=True)
class Metric:
  """A named scalar of one evaluation (`fn(result)`), tabulated as mean ± std over seeds."""
  name: str
  fn: Callable[[Result], float]
  digits: int = 3


def conditioned_w1(group: str) -> Metric:
  """W1 of the feature the run was conditioned on (its config's `feature`)."""
  return Metric(f"w1_{group}", lambda r: w1(r, r.summary["feature"], group))


def feature_w1(feature: str, group: str) -> Metric:
  return Metric(f"w1_{feature}_{group}", lambda r: w1(r, feature, group))


def return_metric(group: str) -> Metric:
  return Metric(f"return_{group}", lambda r: mean_return(r, group), digits=1)


def behaviour_metrics(group: str, feature: str = "x_velocity") -> tuple[Metric, ...]:
  """What the rollouts of the `group` targets did beside what their targets did: mean `feature` per step (achieved,
  the targets') and mean episode length."""
  return (Metric(f"{feature}_{group}", lambda r: float(r.aggregates.get(f"mean_{feature}_{group}", np.nan)), 2),
          Metric(f"target_{feature}_{group}", lambda r: float(r.aggregates.get(f"target_mean_{feature}_{group}",
                                                                                np.nan)), 2),
          Metric(f"length_{group}", lambda r: mean_length(r, group), 0))


# ----------------------------------------------------------------------------------------------------------------
# Aggregation over seeds


@dataclasses.dataclass(frozen=True)
class Cell:
  """One (run, evaluation): its tags (with 'evaluation' and 'run' added) and per-seed values of every metric."""
  tags: dict
  seeds: tuple[int, ...]
  values: dict  # metric name -> np.ndarray [seeds]

  def mean_std(self, metric: str) -> tuple[float, float]:
    v = self.values[metric]
    return float(np.mean(v)), float(np.std(v))


def cells(results: Sequence[Result], metrics: Sequence[Metric]) -> list[Cell]:
  """Results grouped by (run, evaluation), in the order they come, seeds sorted."""
  groups: dict[tuple[str, str], list[Result]] = {}
  for r in results:
    groups.setdefault((r.run.name, r.evaluation), []).append(r)
  out = []
  for (run, evaluation), rs in groups.items():
    rs = sorted(rs, key=lambda r: r.seed)
    tags = dict(rs[0].run.tags, run=run, evaluation=evaluation)
    out.append(Cell(tags, tuple(r.seed for r in rs), {m.name: np.array([m.fn(r) for r in rs]) for m in metrics}))
  return out


def format_cell(cell: Cell | None, metric: Metric) -> str:
  if cell is None:
    return "-"
  mean, std = cell.mean_std(metric.name)
  return f"{mean:.{metric.digits}f} ± {std:.{metric.digits}f}"


def pivot(cell_list: Sequence[Cell], rows: Sequence[str], columns: Sequence[str], metric: Metric) -> str:
  """A Markdown table: one row per distinct `rows` tag tuple, one column per distinct `columns` tag tuple."""
  def key(c, names):
    return tuple(c.tags.get(n, "") for n in names)

  row_keys = list(dict.fromkeys(key(c, rows) for c in cell_list))
  col_keys = list(dict.fromkeys(key(c, columns) for c in cell_list))
  index = {(key(c, rows), key(c, columns)): c for c in cell_list}
  head = "| " + " | ".join(rows) + " | " + " | ".join(" ".join(k) for k in col_keys) + " |"
  lines = [head, "|" + "---|" * (len(rows) + len(col_keys))]
  for rk in row_keys:
    lines.append("| " + " | ".join(rk) + " | " + " | ".join(format_cell(index.get((rk, ck)), metric)
                                                          for ck in col_keys) + " |")
  return "\n".join(lines) + "\n"


def _csv(header: Sequence[str], rows: Sequence[Sequence]) -> bytes:
  with io.StringIO() as buf:
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def _tag_names(cell_list: Sequence[Cell]) -> list[str]:
  return list(dict.fromkeys(k for c in cell_list for k in c.tags))


# ----------------------------------------------------------------------------------------------------------------
# Figures


def w1_bars(path: str, cell_list: Sequence[Cell], panel: str, groups: Sequence[str], bars: Sequence[str],
            metric: Metric) -> None:
  """One panel per `panel` tag value; x = `groups` tag tuples, one bar per `bars` tag tuple (mean, std error bar)."""
  from gdt import plots  # noqa: PLC0415  (matplotlib, Agg)
  plt = plots.plt
  panels = list(dict.fromkeys(c.tags.get(panel, "") for c in cell_list))
  bar_keys = list(dict.fromkeys(tuple(c.tags.get(b, "") for b in bars) for c in cell_list))
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
  for ax, p in zip(axes.flat, panels, strict=True):
    mine = [c for c in cell_list if c.tags.get(panel, "") == p]
    group_keys = list(dict.fromkeys(tuple(c.tags.get(g, "") for g in groups) for c in mine))
    width = 0.8 / max(len(bar_keys), 1)
    for i, bk in enumerate(bar_keys):
      means, stds = [], []
      for gk in group_keys:
        found = [c for c in mine if tuple(c.tags.get(b, "") for b in bars) == bk
                 and tuple(c.tags.get(g, "") for g in groups) == gk]
        m, s = found[0].mean_std(metric.name) if found else (np.nan, 0.0)
        means.append(m)
        stds.append(s)
      ax.bar(np.arange(len(group_keys)) + (i - (len(bar_keys) - 1) / 2) * width, means, width, yerr=stds,
             label=" ".join(bk), capsize=2)
    ax.set_xticks(np.arange(len(group_keys)), [" ".join(g) for g in group_keys], fontsize=8)
    ax.set_title(p, fontsize=10)
    ax.set_ylabel(metric.name, fontsize=8)
  axes.flat[0].legend(fontsize=7)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=90)
  plt.close(fig)
  atomic_write_bytes(path, buf.getvalue())


def target_histograms(path: str, result: Result, feature: str, per_group: int = 2) -> None:
  """Target vs achieved histograms of `feature` for the first `per_group` best and middle targets of `result`."""
  from gdt import plots  # noqa: PLC0415
  with np.load(result.npz) as z:
    names = [str(n) for n in z["names"]]
    edges, target, achieved = (z[f"{k}_{feature}"] for k in ("edges", "target_histograms", "achieved_histograms"))
  rows = {r["name"]: r for r in result.summary["targets"]}
  pick = [i for g in ("best", "middle") for i in [j for j, n in enumerate(names) if n.startswith(g + "_")][:per_group]]
  key = "w1" if result.summary["feature"] == feature else f"w1_{feature}"
  plots.histogram_grid(path, [names[i] for i in pick], edges, target[pick], achieved[pick],
                       title=f"{result.run.name} ({result.evaluation}, seed {result.seed}): {feature}",
                       w1=[rows[names[i]][key] for i in pick], columns=len(pick))


# ----------------------------------------------------------------------------------------------------------------
# The standard report


def protocol_header(title: str, plan: Plan, scale: str, cell_list: Sequence[Cell], expected: int) -> str:
  lines = [f"# {title}", "", f"- scale: {scale}"]
  lines += [f"- {k}: {v}" for k, v in plan.protocol]
  seeds = sorted({s for c in cell_list for s in c.seeds})
  lines.append(f"- evaluations in this report: {sum(len(c.seeds) for c in cell_list)} of {expected} planned "
               f"(seeds found: {', '.join(map(str, seeds)) or 'none'})")
  lines.append("- cells: mean ± std over seeds (numpy, ddof=0) of the per-seed mean over the target group")
  return "\n".join(lines) + "\n"


def standard_report(plan: Plan, results: Sequence[Result], report_dir: str, scale: str, *, title: str,
                    rows: Sequence[str], columns: Sequence[str], metrics: Sequence[Metric],
                    bar_metric: Metric | None = None, histogram_feature: Callable[[Result], str | None] | None = None
                    ) -> Mapping[str, str]:
  """Writes report.md, results.csv, per_seed.csv, w1_bars.png and a few histogram PNGs; returns {label: path}."""
  os.makedirs(report_dir, exist_ok=True)
  cell_list = cells(results, metrics)
  names = [m.name for m in metrics]
  tags = _tag_names(cell_list)
  paths = {}

  per_seed = [[dict(r.run.tags, run=r.run.name, evaluation=r.evaluation).get(t, "") for t in tags] + [r.seed]
              + [m.fn(r) for m in metrics] for r in results]
  paths["per_seed_csv"] = os.path.join(report_dir, "per_seed.csv")
  atomic_write_bytes(paths["per_seed_csv"], _csv(tags + ["seed"] + names, per_seed))
  summary = [[c.tags.get(t, "") for t in tags] + [len(c.seeds), " ".join(map(str, c.seeds))]
             + [x for n in names for x in c.mean_std(n)] for c in cell_list]
  paths["results_csv"] = os.path.join(report_dir, "results.csv")
  atomic_write_bytes(paths["results_csv"], _csv(tags + ["n_seeds", "seeds"] + [f"{n}_{s}" for n in names
                                                                                for s in ("mean", "std")], summary))

  expected = sum(len(r.seeds) * len(r.evaluation_names()) for r in plan.runs)
  md = [protocol_header(title, plan, scale, cell_list, expected)]
  for m in metrics:
    md.append(f"\n## {m.name}\n\n" + (pivot(cell_list, rows, columns, m) if cell_list else "(no finished runs)\n"))
  paths["report_md"] = os.path.join(report_dir, "report.md")

  if cell_list:
    bar = bar_metric or metrics[0]
    paths["w1_bars_png"] = os.path.join(report_dir, "w1_bars.png")
    w1_bars(paths["w1_bars_png"], cell_list, rows[0], rows[1:] or rows[:1], columns, bar)
    md.append(f"\n![{bar.name}](w1_bars.png)\n")
    first_seed = {}
    for r in results:
      first_seed.setdefault((r.run.name, r.evaluation), r)
    for (run, evaluation), r in first_seed.items():
      feature = histogram_feature(r) if histogram_feature else r.summary["feature"]
      if feature:
        label = f"histograms_{run}_{evaluation}"
        paths[label] = os.path.join(report_dir, f"{label}.png")
        target_histograms(paths[label], r, feature)
  atomic_write_bytes(paths["report_md"], "".join(md).encode())
  return paths


def run_tags(**tags: str) -> tuple[tuple[str, str], ...]:
  return tuple((k, str(v)) for k, v in tags.items())
