"""notebooks/*.ipynb run top to bottom on a tiny trained run (code cells exec'd in order, no Jupyter needed)."""

import json
import os

import matplotlib
import numpy as np
import pytest

from experiments.configs import cdt
from gdt import train
from tests.test_train import synthetic_trajectories, tiny

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


def run_notebook(path: str, env: dict[str, str], monkeypatch) -> dict:
  """Executes the code cells of `path` in one namespace with `env` set; returns the namespace."""
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  namespace = {"__name__": "__main__"}
  cells = [c for c in json.load(open(path))["cells"] if c["cell_type"] == "code"]
  assert cells, path
  for i, cell in enumerate(cells):
    exec(compile("".join(cell["source"]), f"{os.path.basename(path)}[code cell {i}]", "exec"), namespace)
  return namespace


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A CDT run trained for 50 steps and evaluated on 2 held-out targets (2 episodes of 30 steps)."""
  root = tmp_path_factory.mktemp("notebook_run")
  trajs = synthetic_trajectories(n=8, t_max=30, min_length=30)
  trajs.save(str(root / "datasets" / "halfcheetah-medium-expert.npz"))
  config = tiny(cdt, data_dir=str(root))
  config.train.update(num_steps=50, steps_per_call=25, checkpoint_every=50)
  config.eval.update(episodes_per_target=2, chunk_steps=10, plots=False)
  train.train_and_evaluate(config, str(root / "run"), log=lambda _: None)
  return root / "run"


def test_analyse_run_notebook(tiny_run, monkeypatch):
  plt.close("all")
  ns = run_notebook(os.path.join(NOTEBOOKS, "analyse_run.ipynb"),
                    {"GDT_RUN": str(tiny_run), "GDT_SYNTHETIC_STEPS": "30", "GDT_SYNTHETIC_EPISODES": "2"},
                    monkeypatch)
  evaluated = json.load(open(tiny_run / "eval_histogram.json"))["targets"]
  assert ns["w1_table"] == {t["name"]: t["w1"] for t in evaluated}
  assert list(ns["steps"]) == [25, 50] and np.isfinite(ns["loss"]).all()
  row = ns["synthetic"].rows[0]
  assert row["name"] == "bimodal" and np.isfinite(row["w1"]) and row["mean_length"] == 30
  np.testing.assert_allclose(ns["synthetic"].achieved_histograms[ns["policy"].feature][0].sum(), 1.0, rtol=1e-5)
  assert len(plt.get_fignums()) == 3  # training curve, worst target, synthetic target
  plt.close("all")
