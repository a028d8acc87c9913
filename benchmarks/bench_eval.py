"""Evaluation throughput: the batched scan rollout (`gdt.evaluate.evaluate_policy`) vs the reference's serial protocol.

The default is the paper's protocol at the reference model size: 10 targets x 20 episodes x 1000 steps of
halfcheetah, a CDT policy (3 layers, H 128, 1 head, K 20, 30 bins; freshly initialised: throughput does not
depend on the weights). Batched: every target x episode in parallel, env steps/s including the model, compile
time apart. Serial (the reference's `eval_cdt.py`: one env, batch 1, one jit'd forward pass and one jit'd env
step per step with a host round trip): `--serial_steps` timed steps after warm-up, extrapolated to the same total.

  python benchmarks/bench_eval.py [--targets=10] [--episodes=20] [--steps=1000] [--serial_steps=300]

Measured 2026-12-02, 2 quiet CPU cores (load 1.5), --steps=200, fresh compilation cache: batched 1,656 / 1,605
env steps/s including the model, compile 7.1 / 8.1 s (two runs) vs serial 383 / 525 env steps/s (3.1-4.3x); with
$SEQRL_NO_XLA_DEFAULTS=1 (XLA's own CPU emitters) compile 10.3 s, 1,616 env steps/s (2026-11-21: compile 9.9 s).
The batched rollout is compute-bound:
each env step runs the 3 x 128 trunk over the 60-token window (~70 MFLOP by a parameter count, not measured), i.e.
~80 GFLOP/s, about the train step's rate.
A sliding window without positions cannot reuse a KV cache (dropping the oldest token changes every later one).
The CPU-sized model of the configs (2 x 64) evaluates at 4.2-4.5k env steps/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.configs import cdt  # noqa: E402
from gdt import envs, evaluate  # noqa: E402
from gdt.checkpoint import LoadedPolicy, policy_kwargs  # noqa: E402
from gdt.conditioning import Labels  # noqa: E402
from gdt.core import runtime  # noqa: E402
from gdt.models import GDTPolicy  # noqa: E402
from gdt.targets import synthetic_targets  # noqa: E402

NUM_BINS = 30


def make_policy(env: str, context_length: int, embed_dim: int, num_layers: int) -> LoadedPolicy:
  e = envs.make(env)
  s, a = e.observation_size, e.action_size
  config = cdt.get_config().to_dict()
  config["model"].update(embed_dim=embed_dim, num_layers=num_layers, num_heads=1)
  model = GDTPolicy(**policy_kwargs(config, s, a, NUM_BINS))
  k = context_length
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, k, NUM_BINS)), jnp.zeros((1, k, s)), jnp.zeros((1, k, a)),
                      jnp.zeros((1, k), jnp.int32), jnp.ones((1, k), bool), deterministic=True)["params"]
  edges = np.linspace(-5.0, 15.0, NUM_BINS + 1).astype(np.float32)
  return LoadedPolicy(model=model, params=params, state_mean=np.zeros(s, np.float32),
                      state_std=np.ones(s, np.float32), context_length=k,
                      labels=Labels("histogram", "x_velocity", edges, config["rtg_scale"], config["gamma"]), env=env,
                      backend=envs.default_backend(env), config=config)


def serial_steps_per_s(policy: LoadedPolicy, cond: np.ndarray, steps: int, warmup: int = 5) -> float:
  """The reference protocol: one env, a K-window forward pass at batch 1 and an env step per step."""
  env = envs.make(policy.env, backend=policy.backend)
  reset, step = jax.jit(env.reset), jax.jit(env.step)
  k = policy.context_length
  s, a = env.observation_size, env.action_size
  states, actions = np.zeros((k, s), np.float32), np.zeros((k, a), np.float32)
  conds, timesteps, mask = np.zeros((k, cond.shape[-1]), np.float32), np.zeros(k, np.int32), np.zeros(k, bool)
  state = reset(jax.random.PRNGKey(0))
  t0 = None
  for t in range(warmup + steps):
    if t == warmup:
      t0 = time.perf_counter()
    states = np.roll(states, -1, 0)
    states[-1] = policy.normalize(np.asarray(state.obs))
    conds = np.roll(conds, -1, 0)
    conds[-1] = cond[min(t, len(cond) - 1)]
    actions, timesteps, mask = np.roll(actions, -1, 0), np.roll(timesteps, -1), np.roll(mask, -1)
    actions[-1], timesteps[-1], mask[-1] = 0.0, min(t, policy.model.max_timestep - 1), True
    action = np.asarray(policy.apply(conds[None], states[None], actions[None], timesteps[None], mask[None])[0, -1])
    actions[-1] = action
    state = step(state, action)
  jax.block_until_ready(state.obs)
  return steps / (time.perf_counter() - t0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--env", default="halfcheetah")
  parser.add_argument("--targets", type=int, default=10)
  parser.add_argument("--episodes", type=int, default=20)
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--context_length", type=int, default=20)
  parser.add_argument("--embed_dim", type=int, default=128)
  parser.add_argument("--num_layers", type=int, default=3)
  parser.add_argument("--serial_steps", type=int, default=300)
  parser.add_argument("--chunk_steps", type=int, default=100)
  args = parser.parse_args()
  runtime.enable_compilation_cache()

  policy = make_policy(args.env, args.context_length, args.embed_dim, args.num_layers)
  rs = np.random.RandomState(0)
  hists = rs.dirichlet(np.ones(NUM_BINS), size=args.targets).astype(np.float32)
  targets = synthetic_targets(hists, [f"target_{i}" for i in range(args.targets)], policy.labels, length=args.steps)
  print(f"{jax.devices()[0].platform} x{jax.device_count()}, {args.env} ({policy.backend}), model "
        f"{args.num_layers} layers x {args.embed_dim}, K {args.context_length}; "
        f"{args.targets} targets x {args.episodes} episodes x {args.steps} steps", flush=True)
  result = evaluate.evaluate_policy(
      policy, targets, dict(policy.config["eval"], episodes_per_target=args.episodes, chunk_steps=args.chunk_steps,
                            plots=False), jax.random.PRNGKey(1))
  p = result.protocol
  batched = p["env_steps_per_s"]
  total = args.targets * args.episodes * args.steps
  print(f"batched: compile {p['compile_s']:.1f}s, run {p['run_s']:.1f}s for {p['env_slots']:,} env steps "
        f"= {batched:,.0f} env steps/s (incl. model)", flush=True)

  serial = serial_steps_per_s(policy, targets.cond[0], args.serial_steps)
  print(f"serial (1 env, batch 1): {serial:,.1f} env steps/s over {args.serial_steps} steps; "
        f"{total:,} steps would take {total / serial / 60:.1f} min vs {p['run_s'] / 60:.1f} min batched")
  print(f"speed-up batched / serial: {batched / serial:.1f}x")


if __name__ == "__main__":
  main()
