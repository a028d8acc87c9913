"""The reference PyTorch step of benchmarks/torch_reference_step.py is the same model and update as ours.

With the same parameters (the reference's init copied into our tree), the PyTorch CDT gives the same actions,
masked loss and gradients as GDTPolicy + masked_action_mse (dropout off, left padding on); its synthetic data are
bench_train_step's; one reference train step runs with the reference's batch layout and LR warmup. Skipped when
torch (the optional extra `bench`) is not installed.
"""

import importlib.util
import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from experiments.configs import cdt  # noqa: E402
from gdt import train  # noqa: E402

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
S, A, BINS, K, B = 17, 6, 30, 20, 3


def _load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH_DIR, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ref = _load("torch_reference_step")
# One intra-op thread: tiny batches gain nothing from more, and OpenMP barriers stall badly on shared cores.
torch.set_num_threads(1)


def _name_map() -> dict[str, tuple[tuple[str, ...], bool]]:
  """PyTorch parameter name -> (our Flax path, transposed?): Dense kernels [in, out] are Conv1D weights as they are,
  nn.Linear weights [out, in] transposed."""
  outside = {"embed_return": ("cond_embed", "embed"), "embed_state": ("state_embed",),
             "embed_action": ("action_embed",), "predict_action.0": ("action_head",)}
  pairs = {f"{t}.weight": (f + ("kernel",), True) for t, f in outside.items()}
  pairs.update({f"{t}.bias": (f + ("bias",), False) for t, f in outside.items()})
  pairs["embed_timestep.weight"] = (("timestep_embed", "embedding"), False)
  norms = {"embed_ln": ("embed_ln",), "transformer.ln_f": ("trunk", "ln_f")}
  for i in range(ref.N_LAYER):
    blk, ours = f"transformer.h.{i}", ("trunk", f"block_{i}")
    norms.update({f"{blk}.ln_1": ours + ("ln1",), f"{blk}.ln_2": ours + ("ln2",)})
    for t, f in (("attn.c_attn", ("attn", "qkv")), ("attn.c_proj", ("attn", "proj")), ("c_fc", ("fc",)),
                 ("c_proj", ("fc_out",))):
      pairs[f"{blk}.{t}.weight"] = (ours + f + ("kernel",), False)
      pairs[f"{blk}.{t}.bias"] = (ours + f + ("bias",), False)
  for t, f in norms.items():
    pairs[f"{t}.weight"] = (f + ("scale",), False)
    pairs[f"{t}.bias"] = (f + ("bias",), False)
  return pairs


def _from_torch(model, name: str, transpose: bool, leaf) -> np.ndarray:
  x = model.get_parameter(name).detach().numpy()
  x = x.T if transpose else x
  assert x.shape == leaf.shape, (name, x.shape, leaf.shape)
  return np.ascontiguousarray(x)


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


# (model.matmul_dtype, action atol, loss rtol, gradient tolerance): float32 matmuls are the reference's math to float
# rounding (element-wise atol 1e-6, rtol 1e-3); the default bfloat16 matmul inputs stay within 1e-3 of its actions
# (measured 6.5e-4), 1e-4 relative of its loss, and the gradient within 2% of the reference's in L2 norm over all
# parameters (measured 0.6%; per parameter <= 10%, measured <= 4.4%).
PRECISIONS = [("float32", 2e-5, 1e-5, None), ("bfloat16", 1e-3, 1e-4, 2e-2)]


@pytest.mark.parametrize("matmul_dtype,action_atol,loss_rtol,grad_l2", PRECISIONS)
def test_same_model_loss_and_gradients_as_ours(matmul_dtype, action_atol, loss_rtol, grad_l2):
  config = cdt.get_config()
  config.model.matmul_dtype = matmul_dtype
  trainer = train.GDTTrainer(config, S, A, BINS)
  shapes = jax.eval_shape(trainer._init_params, jax.random.PRNGKey(0))  # our tree, without computing an init
  torch.manual_seed(0)  # the reference's init, the same in every run of the test
  model = ref.ReferenceCDT(dropout=0.1).eval()  # eval(): dropout off, as deterministic=True
  assert sum(x.size for x in jax.tree.leaves(shapes)) == ref.num_params(model) == ref.REFERENCE_PARAMS == 731_270
  names = _name_map()
  assert set(names) == {name for name, _ in model.named_parameters()}
  # The reference's init, copied into our tree: every leaf must be filled with its exact shape.
  flat = {path: (name, transpose) for name, (path, transpose) in names.items()}
  params = jax.tree_util.tree_map_with_path(lambda kp, leaf: _from_torch(model, *flat[tuple(k.key for k in kp)], leaf),
                                            shapes)

  rng = np.random.default_rng(1)
  mask = np.ones((B, K), bool)
  mask[1, :7] = False  # a left-padded window
  states = rng.normal(size=(B, K, S)).astype(np.float32)
  actions = rng.uniform(-1, 1, (B, K, A)).astype(np.float32)
  cond = rng.dirichlet(np.ones(BINS), size=(B, K)).astype(np.float32)
  timesteps = np.tile(np.arange(500, 500 + K), (B, 1)).astype(np.int32)

  def loss_fn(p):
    pred = trainer.model.apply({"params": p}, cond, states, actions, timesteps, mask, deterministic=True)
    return train.masked_action_mse(pred, actions, mask), pred

  (loss, pred), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  t = {k: torch.from_numpy(v) for k, v in dict(s=states, a=actions, c=cond, ts=timesteps.astype(np.int64),
                                                m=mask.astype(np.float64)).items()}
  ref_pred = model(t["s"], t["a"], t["ts"], t["c"], t["m"])
  ref_loss = ref.masked_action_mse(ref_pred, t["a"], t["m"])
  ref_loss.backward()
  np.testing.assert_allclose(ref_pred.detach().numpy()[mask], np.asarray(pred)[mask], atol=action_atol)
  np.testing.assert_allclose(ref_loss.item(), float(loss), rtol=loss_rtol)
  diff2 = norm2 = 0.0
  for name, (path, transpose) in names.items():  # every parameter's gradient
    g = np.asarray(_get(grads, path))
    g, want = g.T if transpose else g, model.get_parameter(name).grad.numpy()
    if grad_l2 is None:
      np.testing.assert_allclose(want, g, atol=1e-6, rtol=1e-3, err_msg=name)
    else:
      assert np.linalg.norm(g - want) <= 0.1 * np.linalg.norm(want), name  # measured <= 4.4%
      diff2, norm2 = diff2 + np.sum((g - want) ** 2), norm2 + np.sum(want ** 2)
  if grad_l2 is not None:
    assert np.sqrt(diff2) <= grad_l2 * np.sqrt(norm2)


def test_synthetic_data_is_the_benchmarks():
  bench = _load("bench_train_step")
  ours = bench.synthetic_data(4, 50, S, A, BINS)
  theirs = ref.synthetic_trajectories(4, 50)
  for key, field in (("observations", "states"), ("actions", "actions"), ("r_dists", "cond")):
    np.testing.assert_array_equal(np.stack([t[key] for t in theirs]), getattr(ours, field))


def test_reference_step_runs_with_reference_batches_and_warmup():
  step = ref.build(batch_size=4, dropout=0.1, trajectories=ref.synthetic_trajectories(8, 30))  # short: padding
  states, actions, timesteps, mask, dists = step.batcher()
  assert states.shape == (4, K, S) and actions.shape == (4, K, A) and dists.shape == (4, K, BINS)
  assert timesteps.dtype == torch.long and timesteps.shape == mask.shape == (4, K)
  assert bool((actions[mask == 0] == -10).all())  # the reference pads actions with -10
  losses = [step() for _ in range(2)]
  assert np.isfinite(losses).all() and np.isfinite(step.action_error)
  assert step.optimizer.param_groups[0]["lr"] == pytest.approx(ref.LEARNING_RATE * 3 / ref.WARMUP_STEPS)
