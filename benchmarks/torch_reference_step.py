"""Reference PyTorch train step of GDT's Categorical DT: the eager CPU baseline of benchmarks/bench_train_step.py.

Owns a PyTorch port of the reference CDT model and update (frt03/generalized_dt: `GeneralizedDecisionTransformer` on
trajectory_gpt2.py's `GPT2Model`, `CategoricalSequenceTrainer.train_step`, train_cdt.py's `get_batch`, AdamW and
LambdaLR) as gdt_reference.md §2.4, §2.5 and §5.1-§5.3 describe it, at the size of experiments/configs/cdt.py on
halfcheetah shapes (state 17, action 6, 30 bins: 731,270 parameters, asserted, the same as our GDTPolicy), on
synthetic on-CPU trajectories; and its timing. bench_train_step.py runs it in a subprocess (so torch's and XLA's
thread pools never share a process) and prints ours/reference.

torch is an optional extra, not a dependency of the package: `pip install -e .[bench]` (for a CPU-only build,
first `pip install torch --index-url https://download.pytorch.org/whl/cpu`; tested with torch 2.13.0+cpu).

  python benchmarks/torch_reference_step.py [--steps 100] [--calls 3] [--batch 64] [--dropout 0.1] [--threads N]
      [--torch_compile] [--json]

Timing mirrors ours: one warm-up block of `--steps` steps, then `--calls` blocks; ms/step is the median over blocks
of the block's mean. A step is everything the reference's training loop does per step: get_batch (numpy, per-window
Python loop), forward, masked MSE, backward, clip_grad_norm_, AdamW, the `action_error` diagnostic, scheduler.step().

Left out on purpose, as dead compute (none of it reaches the loss): the unused `predict_state`/`predict_return` heads
(2,322 parameters the reference evaluates but never trains) and `wte` token embedding (128), which would break
parameter parity with our model, and the KV-cache `presents` stacked per layer (GPT2Config.use_cache): by their
FLOPs and bytes, well under 1% of the step together. In get_batch, the rewards, dones and RTG that GDT ignores:
RTG's `discount_cumsum` is a pure-Python loop over the rest of the trajectory for every window, which would dominate
get_batch and measure nothing our step does. Kept, because the reference's train_step does them: the `action_error`
diagnostic and the `.item()` syncs.

`--torch_compile` (inductor, C++ codegen; not what the reference runs) works here with torch 2.13.0+cpu: the
warm-up block then includes ~1.5 min of compilation on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np
import torch
from torch import nn

STATE_DIM, ACT_DIM, DIST_DIM = 17, 6, 30  # halfcheetah, 31 bin edges (gdt_reference.md §2.2, §5.1)
EMBED_DIM, N_LAYER, N_HEAD, K = 128, 3, 1, 20  # §5.1
MAX_EP_LEN = 1000  # timestep embedding rows; train timesteps clipped to 999 (§5.1)
N_POSITIONS = 1024  # causal-mask buffer only, no positional embedding (§5.1, §5.2)
LN_EPS = 1e-5  # §5.2
LEARNING_RATE, WEIGHT_DECAY, WARMUP_STEPS, GRAD_CLIP = 1e-4, 1e-4, 10_000, 0.25  # §5.1
REFERENCE_PARAMS = 731_270  # = our GDTPolicy for halfcheetah CDT (benchmarks/bench_train_step.py prints both)


class Conv1D(nn.Module):
  """HF transformers' Conv1D of trajectory_gpt2.py: y = x W + b with W [in, out] (one addmm), W ~ N(0, 0.02), b = 0."""

  def __init__(self, out_features: int, in_features: int):
    super().__init__()
    self.out_features = out_features
    self.weight = nn.Parameter(torch.empty(in_features, out_features).normal_(std=0.02))  # §5.2 GPT-2 init
    self.bias = nn.Parameter(torch.zeros(out_features))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    out = torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight)
    return out.view(*x.shape[:-1], self.out_features)


class Attention(nn.Module):
  """GPT-2 causal self-attention (§5.2): scale 1/sqrt(d_head); the causal `tril` REPLACES logits by -1e4, the
  padding mask is ADDED as (1 - m) * -1e4; dropout on the attention probabilities and on the projected output."""

  def __init__(self, embed_dim: int, n_head: int, dropout: float):
    super().__init__()
    self.n_head, self.embed_dim = n_head, embed_dim
    self.register_buffer("bias", torch.tril(torch.ones(N_POSITIONS, N_POSITIONS, dtype=torch.uint8))[None, None])
    self.register_buffer("masked_bias", torch.tensor(-1e4))
    self.c_attn = Conv1D(3 * embed_dim, embed_dim)
    self.c_proj = Conv1D(embed_dim, embed_dim)
    self.attn_dropout = nn.Dropout(dropout)
    self.resid_dropout = nn.Dropout(dropout)

  def _split_heads(self, x: torch.Tensor, key: bool = False) -> torch.Tensor:
    x = x.view(*x.shape[:-1], self.n_head, x.size(-1) // self.n_head)
    return x.permute(0, 2, 3, 1) if key else x.permute(0, 2, 1, 3)  # key already transposed for q @ k

  def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
    query, key, value = self.c_attn(x).split(self.embed_dim, dim=2)
    q, k, v = self._split_heads(query), self._split_heads(key, key=True), self._split_heads(value)
    w = torch.matmul(q, k) / (float(v.size(-1)) ** 0.5)
    nd, ns = w.size(-2), w.size(-1)
    w = torch.where(self.bias[:, :, ns - nd:ns, :ns].bool(), w, self.masked_bias.to(w.dtype))
    w = self.attn_dropout(torch.softmax(w + additive_mask, dim=-1))
    a = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
    return self.resid_dropout(self.c_proj(a.view(*a.shape[:-2], self.embed_dim)))


class Block(nn.Module):
  """Pre-LN GPT-2 block (§5.2): x += Drop(Proj(Attn(LN1 x))); x += Drop(W2 ReLU(W1 LN2 x)), MLP inner 4H (§5.1)."""

  def __init__(self, embed_dim: int, n_head: int, dropout: float):
    super().__init__()
    self.ln_1 = nn.LayerNorm(embed_dim, eps=LN_EPS)
    self.attn = Attention(embed_dim, n_head, dropout)
    self.ln_2 = nn.LayerNorm(embed_dim, eps=LN_EPS)
    self.c_fc = Conv1D(4 * embed_dim, embed_dim)
    self.c_proj = Conv1D(embed_dim, 4 * embed_dim)
    self.dropout = nn.Dropout(dropout)

  def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
    x = self.attn(self.ln_1(x), additive_mask) + x
    return x + self.dropout(self.c_proj(torch.relu(self.c_fc(self.ln_2(x)))))


class GPT2Trunk(nn.Module):
  """trajectory_gpt2.py's GPT2Model on input embeddings (§5.2): no positional embedding, embd dropout on the inputs,
  n_layer pre-LN blocks, final ln_f. Inside it: Linear weights N(0, 0.02), biases 0, LayerNorm (1, 0)."""

  def __init__(self, embed_dim: int, n_layer: int, n_head: int, dropout: float):
    super().__init__()
    self.drop = nn.Dropout(dropout)  # embd_pdrop = 0.1 (GPT2Config default, §5.1)
    self.h = nn.ModuleList([Block(embed_dim, n_head, dropout) for _ in range(n_layer)])
    self.ln_f = nn.LayerNorm(embed_dim, eps=LN_EPS)

  def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    additive_mask = (1.0 - attention_mask[:, None, None, :].to(inputs_embeds.dtype)) * -10000.0
    x = self.drop(inputs_embeds)
    for block in self.h:
      x = block(x, additive_mask)
    return self.ln_f(x)


class ReferenceCDT(nn.Module):
  """GeneralizedDecisionTransformer (§2.4): tokens (z_t, s_t, a_t) with one timestep embedding added to all three,
  embed LayerNorm, the GPT-2 trunk, the action read off each s_t token by Linear + tanh. The embeddings and the head
  keep torch's default init (§5.2: Linear U(+-1/sqrt(fan_in)) weight and bias, Embedding N(0, 1))."""

  def __init__(self, dropout: float = 0.1, state_dim: int = STATE_DIM, act_dim: int = ACT_DIM,
               dist_dim: int = DIST_DIM, embed_dim: int = EMBED_DIM, n_layer: int = N_LAYER, n_head: int = N_HEAD):
    super().__init__()
    self.embed_dim = embed_dim
    self.transformer = GPT2Trunk(embed_dim, n_layer, n_head, dropout)
    self.embed_timestep = nn.Embedding(MAX_EP_LEN, embed_dim)
    self.embed_return = nn.Linear(dist_dim, embed_dim)  # CDT embeds the future histogram h_t (§2.4)
    self.embed_state = nn.Linear(state_dim, embed_dim)
    self.embed_action = nn.Linear(act_dim, embed_dim)
    self.embed_ln = nn.LayerNorm(embed_dim)
    self.predict_action = nn.Sequential(nn.Linear(embed_dim, act_dim), nn.Tanh())

  def forward(self, states, actions, timesteps, dists, attention_mask) -> torch.Tensor:
    batch, k = states.shape[:2]
    time_embeddings = self.embed_timestep(timesteps)
    tokens = torch.stack((self.embed_return(dists) + time_embeddings, self.embed_state(states) + time_embeddings,
                          self.embed_action(actions) + time_embeddings), dim=1)
    tokens = self.embed_ln(tokens.permute(0, 2, 1, 3).reshape(batch, 3 * k, self.embed_dim))
    mask = torch.stack((attention_mask,) * 3, dim=1).permute(0, 2, 1).reshape(batch, 3 * k)  # x3 per step
    x = self.transformer(tokens, mask).reshape(batch, k, 3, self.embed_dim).permute(0, 2, 1, 3)
    return self.predict_action(x[:, 1])  # the s_t token predicts a_t


def num_params(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def synthetic_trajectories(num_traj: int = 100, length: int = 1000, seed: int = 0) -> list[dict[str, np.ndarray]]:
  """The arrays of bench_train_step.synthetic_data (same generator, seed and draw order), as the reference's list
  of per-trajectory dicts (float32, as the D4RL pickles); `r_dists` is the precomputed histogram h_t (§2.3)."""
  rng = np.random.default_rng(seed)
  cond = rng.random((num_traj, length, DIST_DIM)).astype(np.float32)
  cond /= cond.sum(-1, keepdims=True)
  states = rng.normal(size=(num_traj, length, STATE_DIM)).astype(np.float32)
  actions = rng.uniform(-1, 1, (num_traj, length, ACT_DIM)).astype(np.float32)
  return [dict(observations=states[i], actions=actions[i], r_dists=cond[i]) for i in range(num_traj)]


class ReferenceBatcher:
  """train_cdt.py's get_batch (§5.3) for the tensors the model reads: trajectory uniform over the training set,
  start ~ U{0..len-1}, window [si, si+K) truncated at the end, left-padded to K (states 0 before normalising with
  the dataset mean / (std + 1e-6), actions -10, h_t 0, timesteps 0, mask 0), one Python iteration per window."""

  def __init__(self, trajectories: list[dict[str, np.ndarray]], batch_size: int, max_len: int = K):
    self.trajectories, self.batch_size, self.max_len = trajectories, batch_size, max_len
    all_states = np.concatenate([t["observations"] for t in trajectories], axis=0)
    self.state_mean, self.state_std = np.mean(all_states, axis=0), np.std(all_states, axis=0) + 1e-6
    self.train_indices = np.arange(len(trajectories))
    self.seconds = 0.0  # time spent here, reported apart

  def __call__(self):
    t0 = time.perf_counter()
    k, sd, ad, dd = self.max_len, STATE_DIM, ACT_DIM, DIST_DIM
    batch_inds = np.random.choice(self.train_indices, size=self.batch_size, replace=True)
    s, a, timesteps, mask, dist = [], [], [], [], []
    for i in range(self.batch_size):
      traj = self.trajectories[int(batch_inds[i])]
      si = random.randint(0, traj["observations"].shape[0] - 1)
      s.append(traj["observations"][si:si + k].reshape(1, -1, sd))
      a.append(traj["actions"][si:si + k].reshape(1, -1, ad))
      timesteps.append(np.arange(si, si + s[-1].shape[1]).reshape(1, -1))
      timesteps[-1][timesteps[-1] >= MAX_EP_LEN] = MAX_EP_LEN - 1
      dist.append(traj["r_dists"][si:si + k].reshape(1, -1, dd))
      tlen = s[-1].shape[1]
      s[-1] = np.concatenate([np.zeros((1, k - tlen, sd)), s[-1]], axis=1)
      s[-1] = (s[-1] - self.state_mean) / self.state_std
      a[-1] = np.concatenate([np.ones((1, k - tlen, ad)) * -10., a[-1]], axis=1)
      timesteps[-1] = np.concatenate([np.zeros((1, k - tlen)), timesteps[-1]], axis=1)
      mask.append(np.concatenate([np.zeros((1, k - tlen)), np.ones((1, tlen))], axis=1))
      dist[-1] = np.concatenate([np.zeros((1, k - tlen, dd)), dist[-1]], axis=1)
    batch = (torch.from_numpy(np.concatenate(s, axis=0)).to(dtype=torch.float32),
             torch.from_numpy(np.concatenate(a, axis=0)).to(dtype=torch.float32),
             torch.from_numpy(np.concatenate(timesteps, axis=0)).to(dtype=torch.long),
             torch.from_numpy(np.concatenate(mask, axis=0)),
             torch.from_numpy(np.concatenate(dist, axis=0)).to(dtype=torch.float32))
    self.seconds += time.perf_counter() - t0
    return batch


def masked_action_mse(action_preds, actions, attention_mask) -> torch.Tensor:
  """§2.5: MSE over the valid positions x act_dim (masked select, then mean), as CategoricalSequenceTrainer."""
  act_dim = action_preds.shape[2]
  valid = attention_mask.reshape(-1) > 0
  return torch.mean((action_preds.reshape(-1, act_dim)[valid] - actions.reshape(-1, act_dim)[valid]) ** 2)


class ReferenceTrainStep:
  """CategoricalSequenceTrainer.train_step + scheduler.step() (§2.5, §5.1): AdamW lr 1e-4, weight decay 1e-4 on all
  parameters, torch's betas (0.9, 0.999) and eps 1e-8, LambdaLR min((step+1)/10000, 1), clip_grad_norm_ 0.25."""

  def __init__(self, model: nn.Module, batcher: ReferenceBatcher, forward=None):
    self.model, self.batcher = model, batcher
    self.forward = model if forward is None else forward  # a torch.compile'd model when asked
    self.optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda steps: min((steps + 1) / WARMUP_STEPS, 1))
    self.action_error = float("nan")

  def __call__(self) -> float:
    states, actions, timesteps, attention_mask, dists = self.batcher()
    action_target = torch.clone(actions)
    action_preds = self.forward(states, actions, timesteps, dists, attention_mask)
    loss = masked_action_mse(action_preds, action_target, attention_mask)
    self.optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
    self.optimizer.step()
    with torch.no_grad():  # the reference's diagnostics['training/action_error']
      self.action_error = masked_action_mse(action_preds, action_target, attention_mask).detach().cpu().item()
    self.scheduler.step()
    return loss.detach().cpu().item()


def set_threads(threads: int) -> None:
  """0: torch's own choice. N: the first N CPUs this process may use, and torch.set_num_threads(N)."""
  if threads:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    torch.set_num_threads(threads)


def build(batch_size: int, dropout: float, seed: int = 0, torch_compile: bool = False,
          trajectories: list[dict[str, np.ndarray]] | None = None) -> ReferenceTrainStep:
  """The seeded reference step on `trajectories` (default: the benchmark's synthetic 100 x 1000)."""
  random.seed(seed)  # train_cdt.py seeds random, numpy and torch (§5.1)
  np.random.seed(seed)
  torch.manual_seed(seed)
  model = ReferenceCDT(dropout)
  n = num_params(model)
  assert n == REFERENCE_PARAMS, f"reference CDT has {n:,} parameters, expected {REFERENCE_PARAMS:,} (= our GDTPolicy)"
  model.train()
  forward = torch.compile(model) if torch_compile else None
  trajectories = synthetic_trajectories() if trajectories is None else trajectories
  return ReferenceTrainStep(model, ReferenceBatcher(trajectories, batch_size), forward)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=100, help="steps per timed block")
  p.add_argument("--calls", type=int, default=3, help="timed blocks (median over blocks)")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--dropout", type=float, default=0.1)
  p.add_argument("--threads", type=int, default=0, help="0: torch's default; N: N CPUs and torch.set_num_threads(N)")
  p.add_argument("--torch_compile", action="store_true", help="torch.compile the model (inductor; not the reference)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--json", action="store_true", help="end with one JSON line (read by bench_train_step.py)")
  args = p.parse_args()

  set_threads(args.threads)
  step = build(args.batch, args.dropout, args.seed, args.torch_compile)
  t0 = time.perf_counter()
  for _ in range(args.steps):  # warm-up block (and torch.compile's compile)
    loss = step()
  warmup_s = time.perf_counter() - t0
  times, batch_times = [], []
  for _ in range(args.calls):
    step.batcher.seconds = 0.0
    t0 = time.perf_counter()
    for _ in range(args.steps):
      loss = step()
    times.append((time.perf_counter() - t0) / args.steps)
    batch_times.append(step.batcher.seconds / args.steps)
  step_s, batch_s = float(np.median(times)), float(np.median(batch_times))
  result = dict(ms_per_step=1e3 * step_s, get_batch_ms=1e3 * batch_s, warmup_s=warmup_s, loss=loss,
                params=num_params(step.model), torch=torch.__version__, threads=torch.get_num_threads(),
                interop_threads=torch.get_num_interop_threads(), cpus=len(os.sched_getaffinity(0)),
                compiled=args.torch_compile, steps=args.steps, calls=args.calls, batch=args.batch, dropout=args.dropout)
  mode = "torch.compile" if args.torch_compile else "eager"
  print(f"reference PyTorch {torch.__version__} {mode}, CPU: {result['threads']} threads "
        f"(interop {result['interop_threads']}), {result['cpus']} CPUs; {result['params']:,} params; batch "
        f"{args.batch}, K {K}, dropout {args.dropout}")
  print(f"reference step: {result['ms_per_step']:.2f} ms/step (median of {args.calls} blocks of {args.steps} steps; "
        f"get_batch {result['get_batch_ms']:.2f} ms of it); warm-up block {warmup_s:.1f}s; loss {loss:.4f}")
  if args.json:
    print(json.dumps(result))


if __name__ == "__main__":
  main()
