"""morphology.experts: the training-only shaped reward and fresh-goal resets, then one tiny PPO expert run shared by
the module (every snapshot evaluated on the reference rules, selection, reruns that reuse everything, load_expert
and its act_fn, a rejected expert refused, the all-envs table) and config validation. All of it runs on a point env
with the real touch task and no physics to compile; one slow test repeats the run on the real ant_touch_2."""

import dataclasses
import json
import os
import shutil
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import State
from brax.envs.wrappers.training import EpisodeWrapper

from experiments.configs import mxt_experts
from gdt.core import ppo
from gdt.core.config import apply_overrides
from morphology import envs, experts
from morphology.tasks import Frame, evaluate
from morphology.tasks.push import Push
from morphology.tasks.touch import Touch

ENV = "ant_touch_2"  # the fewest actuators of a progress-capable task


# ------------------------------------------------------------------------- a point env with a real task

class PointState(NamedTuple):
  """The point env's pipeline state."""
  pos: jax.Array  # [3] the root
  ball: jax.Array  # [3] the touch ball


@dataclasses.dataclass(frozen=True)
class PointEnv:
  """The touch task on a point root that moves by 0.5 x its action (xy) each step, with no physics to compile: reset
  at the origin, the ball sampled by the task; reward, success and distance from the task's own `evaluate`, as
  MorphologyTaskEnv computes them. Stands in for `envs.make(ENV)` where a test needs the expert machinery only
  (equal by name, so the compiled evaluation chunk is shared)."""

  name: str = "point_touch"
  action_size, observation_size, dt, episode_length = 2, 5, 0.05, 12
  task = Touch()
  config = envs.EnvConfig()

  def frame(self, ps: PointState) -> Frame:
    zeros = jnp.zeros((1, 3))
    return Frame(root_pos=ps.pos, root_vel=jnp.zeros(3), tips=zeros, obj_pos=ps.ball[None], obj_vel=zeros)

  def _observe(self, ps: PointState, goals):
    out = evaluate(self.task, self.frame(ps), goals, self.dt)
    return out, jnp.concatenate([ps.pos, ps.ball[:2] - ps.pos[:2]])

  def reset(self, rng) -> State:
    obj, goals = self.task.sample(rng)
    ps = PointState(jnp.zeros(3), obj[0])
    out, obs = self._observe(ps, goals)
    zero = jnp.zeros(())
    info = {"goals": goals, "success": zero, "distance": out.distance, "initial_distance": out.distance}
    return State(ps, obs, zero, zero, {"success": zero, "distance": out.distance}, info)

  def step(self, state, action) -> State:
    ps = state.pipeline_state
    ps = PointState(ps.pos + 0.5 * jnp.concatenate([action, jnp.zeros(1)]), ps.ball)
    out, obs = self._observe(ps, state.info["goals"])
    state.info.update(success=out.success, distance=out.distance)
    state.metrics.update(success=out.success, distance=out.distance)
    return state.replace(pipeline_state=ps, obs=obs, reward=out.reward, done=out.success)


def test_progress_reward_pays_for_progress_not_for_standing_still():
  env = experts.ProgressReward(PointEnv(), scale=10.0, success_bonus=5.0)
  state = env.reset(jax.random.PRNGKey(0))
  ball = state.pipeline_state.ball
  d0 = float(state.info["distance"])
  toward = 0.4 * ball[:2] / jnp.linalg.norm(ball[:2])  # 0.2 m
  still = env.step(state, jnp.zeros(2))
  closer = env.step(state, toward)
  away = env.step(state, -toward)
  assert float(still.reward) == pytest.approx(0.0, abs=1e-5)
  assert float(closer.reward) == pytest.approx(10.0 * 0.2, rel=1e-4) and float(away.reward) < 0
  # The reference reward of the same steps is -distance: negative even for the step that made progress.
  assert float(PointEnv().step(state, toward).reward) == pytest.approx(-(d0 - 0.2), rel=1e-4)
  # Arriving pays the progress of the last step plus the bonus once the success rule holds.
  at = state.replace(pipeline_state=PointState(ball - jnp.array([0.6, 0.0, 0.0]), ball))
  arrive = env.step(at, jnp.array([0.4, 0.0]))
  assert float(arrive.info["success"]) == 1.0
  assert float(arrive.reward) == pytest.approx(10.0 * 0.2 + 5.0, rel=1e-3)


def test_progress_reward_after_a_reset_pays_nothing_for_the_jump_back():
  """The previous distance is read from the incoming state, so a state restored to the start pays only its own
  progress (brax's auto-reset keeps `info`, where a carried distance would be stale)."""
  env = experts.ProgressReward(PointEnv(), scale=10.0, success_bonus=0.0)
  start = env.reset(jax.random.PRNGKey(1))
  far = env.step(start, jnp.array([-3.0, 0.0]))  # far away: a stale carried distance would be large
  restored = far.replace(pipeline_state=start.pipeline_state)
  assert float(env.step(restored, jnp.zeros(2)).reward) == pytest.approx(0.0, abs=1e-5)


def test_progress_reward_refuses_tasks_without_a_success_distance():
  push = types.SimpleNamespace(name="point_push", task=Push())  # push's distance is box-target: no approach reward
  with pytest.raises(ValueError, match="point_push is a push task"):
    experts.ProgressReward(push, 1.0, 0.0)


def test_fresh_reset_samples_new_goals_and_keeps_the_episode_bookkeeping():
  env = experts.FreshResetWrapper(EpisodeWrapper(PointEnv(), episode_length=2, action_repeat=1))
  state = env.reset(jax.random.PRNGKey(2))
  step = jax.jit(env.step)
  goals, ends = [np.asarray(state.pipeline_state.ball)], 0
  for _ in range(3):  # the 2nd step truncates; the fresh episode starts there
    state = step(state, jnp.ones(2) * 0.02)
    goals.append(np.asarray(state.pipeline_state.ball))
    if float(state.done):
      ends += 1
      assert float(state.info["truncation"]) == 1.0  # from the step that ended, as PPO's GAE needs it
      np.testing.assert_array_equal(state.pipeline_state.pos, 0.0)  # the fresh start
      # The task's info comes from the fresh reset too (reach goals live there).
      assert float(state.info["initial_distance"]) == float(state.info["distance"]) > 0
  assert ends == 1
  assert not np.array_equal(goals[0], goals[-1])  # brax's AutoResetWrapper would restore goals[0]
  np.testing.assert_array_equal(goals[0], goals[1])
  assert int(state.info["steps"]) == 1


# ------------------------------------------------------------------- one tiny PPO run on the point env

def tiny_config(**overrides):
  c = mxt_experts.get_config(f"preset=quick,envs={ENV}")
  apply_overrides(c, [f"{k}={v}" for k, v in {
      "ppo.num_timesteps": 80, "ppo.num_evals": 3, "ppo.num_envs": 4, "ppo.batch_size": 4,
      "ppo.num_minibatches": 2, "ppo.unroll_length": 5, "ppo.num_updates_per_batch": 1, "ppo.num_eval_envs": 2,
      "ppo.policy_hidden_layer_sizes": "8", "ppo.value_hidden_layer_sizes": "8", "train_episode_length": 6,
      "eval_episodes": 3, "accept_success": 0.0, **overrides}.items()])
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """ENV's expert trained for 80 env steps (snapshots at 0, 40, 80) on the point env, which stands in for
  `envs.make(ENV)` for the whole module."""
  real_make = envs.make
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(envs, "make", lambda name, backend=None, config=None: (
        PointEnv(name) if name == ENV else real_make(name, backend, config)))
    root = str(tmp_path_factory.mktemp("experts"))
    config = tiny_config()
    expert = experts.train_expert(ENV, config, root)
    yield config, root, expert


def test_every_snapshot_is_evaluated_and_the_best_selected(trained):
  config, root, expert = trained
  workdir = experts.expert_workdir(root, ENV)
  steps = [s.step for s in ppo.load_snapshots(workdir)]
  assert steps == [0, 40, 80]
  evals = json.load(open(os.path.join(workdir, experts.SNAPSHOT_EVAL_FILE)))["steps"]
  assert sorted(map(int, evals)) == steps
  record = experts.read_expert_json(workdir)
  assert record["step"] == experts.select(list(evals.values()))["step"] == expert.step
  assert record["success"] == evals[str(expert.step)]["success"] == expert.success
  assert record["shaped_reward"] == "progress" and record["episodes"] == 3 and record["accepted"]
  assert record["ppo"]["num_envs"] == 4 and record["threshold"] == 0.0 and record["action_size"] == 2


def test_snapshot_evaluation_uses_the_reference_reward_over_whole_episodes(trained):
  """A policy whose mode is 0 never moves: the reference touch return is then -distance at every one of the
  episode_length steps, with no success (the shaped reward would pay 0)."""
  config, root, expert = trained
  snap = ppo.load_snapshot(ppo.snapshot_path(expert.workdir, expert.step))
  still = ppo.Snapshot(1, 0.0, (snap.params[0], jax.tree.map(np.zeros_like, snap.params[1]), snap.params[2]))
  # The fixture's batch shape (3 snapshots x 3 episodes), so its compiled chunk is reused.
  e = experts.evaluate_snapshots(PointEnv(ENV), config.ppo, [still] * 3, episodes=3, seed=3)[0]
  assert e["success"] == 0.0 and e["final_distance"] > 2.0  # the ball is sampled at r in [2, 5]
  assert e["episode_return"] == pytest.approx(-PointEnv.episode_length * e["final_distance"], rel=1e-5)


def test_selection_picks_the_best_deterministic_success_then_return(trained, tmp_path, monkeypatch):
  config, root, _ = trained
  copy = str(tmp_path / "copy")
  shutil.copytree(os.path.join(experts.expert_workdir(root, ENV), ppo.SNAPSHOT_DIR),
                  os.path.join(experts.expert_workdir(copy, ENV), ppo.SNAPSHOT_DIR))
  steps = [s.step for s in ppo.load_snapshots(experts.expert_workdir(copy, ENV))]
  fake = {steps[0]: (0.25, -10.0), steps[1]: (0.75, -900.0), steps[2]: (0.75, -800.0)}  # a tie broken by return

  def evaluate(env, ppo_config, snapshots, episodes, seed):
    return [dict(step=s.step, success=fake[s.step][0], episode_return=fake[s.step][1], final_distance=1.0)
            for s in snapshots]

  monkeypatch.setattr(experts, "evaluate_snapshots", evaluate)
  expert = experts.train_expert(ENV, apply_overrides(tiny_config(), ["accept_success=0.5"]), copy)
  assert (expert.step, expert.success) == (steps[2], 0.75)
  assert experts.load_expert(expert.workdir) == expert


def test_rerun_reuses_training_evaluation_and_selection(trained, monkeypatch):
  config, root, expert = trained
  path = os.path.join(expert.workdir, experts.EXPERT_FILE)
  before = os.stat(path).st_mtime_ns

  def fail(*args, **kwargs):
    raise AssertionError("a rerun must not train or evaluate again")

  monkeypatch.setattr(ppo.ppo_train, "train", fail)
  monkeypatch.setattr(experts, "evaluate_snapshots", fail)
  assert experts.train_expert(ENV, config, root) == expert
  assert os.stat(path).st_mtime_ns == before  # the same selection is not rewritten


def test_load_expert_round_trips_and_acts_deterministically_under_jit(trained):
  _, root, expert = trained
  loaded = experts.load_expert(experts.expert_workdir(root, ENV))
  assert loaded == expert and loaded.env_name == ENV
  env = PointEnv(ENV)
  act = jax.jit(loaded.act_fn())
  obs = jax.random.normal(jax.random.PRNGKey(0), (3, env.observation_size))
  a = jax.vmap(act)(obs, jax.random.split(jax.random.PRNGKey(1), 3))
  b = jax.vmap(act)(obs, jax.random.split(jax.random.PRNGKey(2), 3))  # other keys: the mode ignores them
  assert a.shape == (3, env.action_size) and np.all(np.abs(np.asarray(a)) <= 1)
  np.testing.assert_array_equal(a, b)
  # The same policy as the snapshot's mode through brax's own inference function (normaliser included).
  snap = ppo.load_snapshot(ppo.snapshot_path(expert.workdir, expert.step))
  record = experts.read_expert_json(expert.workdir)
  make_policy = ppo.make_policy_factory(env, tiny_config().ppo)
  want, _ = make_policy(snap.params[:2], deterministic=True)(obs, jax.random.PRNGKey(3))
  np.testing.assert_allclose(a, want, rtol=1e-6, atol=1e-6)
  assert record["observation_size"] == env.observation_size
  # the env the expert was trained on travels with it (its data are collected on the same observation)
  assert record["observation"] == tiny_config().observation
  assert experts.load_expert(expert.workdir, allow_rejected=True).env_config == expert.env_config


def test_a_rejected_expert_is_refused_unless_allowed(trained):
  _, root, expert = trained
  assert expert.success < 1.0  # 80 env steps of training
  rejected = experts.train_expert(ENV, tiny_config(accept_success=1.0), root)  # reuses snapshots and evaluations
  assert (rejected.step, rejected.success) == (expert.step, expert.success)
  assert not experts.read_expert_json(rejected.workdir)["accepted"]
  with pytest.raises(ValueError, match="rejected"):
    experts.load_expert(rejected.workdir)
  assert experts.load_expert(rejected.workdir, allow_rejected=True) == expert
  experts.train_expert(ENV, tiny_config(), root)  # back to the module's accepted expert
  assert experts.load_expert(rejected.workdir) == expert


def test_train_experts_writes_the_table_and_guards_the_root(trained):
  config, root, expert = trained
  rows = experts.train_experts(config, root)  # everything done: only the table
  assert [(r["env"], r["steps"], r["accepted"]) for r in rows] == [(ENV, expert.step, True)]
  md, csv_text = (open(os.path.join(root, f)).read() for f in experts.TABLE_FILES)
  assert f"| {ENV} | {expert.step} |" in md and csv_text.splitlines()[0] == "env,steps,success,return,accepted,episodes"
  with pytest.raises(ValueError, match="ppo.learning_rate"):  # another config on the same root
    experts.train_experts(tiny_config(**{"ppo.learning_rate": 1e-3}), root)


def test_an_env_seed_reaches_ppo_and_the_evaluation_and_a_root_refuses_another(trained, tmp_path):
  config, root, expert = trained
  assert experts.expert_seed(config, ENV) == config.seed == 0
  with pytest.raises(ValueError, match=f"{ENV}'s expert was trained with seed 0, the config asks for seed 7"):
    experts.train_expert(ENV, tiny_config(env_seeds=f"{ENV}:7"), root)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(envs, "make", lambda name, backend=None, config=None: PointEnv(name))
    other = experts.train_expert(ENV, tiny_config(env_seeds=f"ant_touch_3:1,{ENV}:7"), str(tmp_path))
  assert experts.read_expert_json(other.workdir)["seed"] == 7
  evaluated = json.load(open(os.path.join(other.workdir, experts.SNAPSHOT_EVAL_FILE)))
  assert evaluated["settings"]["seed"] == 7
  # PPO got the seed: its initial params differ from the seed-0 run's.
  first = [ppo.load_snapshot(s) for s in (ppo.snapshot_path(expert.workdir, 0), ppo.snapshot_path(other.workdir, 0))]
  a, b = (jax.tree.leaves(f.params[1]) for f in first)
  assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # kernels (the biases start at 0)


@pytest.mark.parametrize("override, field", [
    ({"env_seeds": "ant_touch_3"}, "env_seeds"),
    ({"env_seeds": "ant_touch_3:1,ant_touch_3:2"}, "env_seeds"),
    ({"envs": "ant_touch_2,ant_tuoch_3"}, "envs"),
    ({"shaped_reward": "speed"}, "shaped_reward"),
    ({"envs": "ant_push_2"}, "shaped_reward"),
    ({"ppo.num_envs": 3}, "ppo.num_envs"),
    ({"ppo.action_repeat": 2}, "ppo.action_repeat"),
    ({"observation": "amorpheus"}, "observation"),
])
def test_bad_configs_are_refused_naming_the_field(override, field, tmp_path):
  c = mxt_experts.get_config("preset=quick")
  apply_overrides(c, [f"{k}={v}" for k, v in override.items()])
  with pytest.raises(ValueError, match=f"config field '{field}'"):
    experts.train_experts(c, str(tmp_path))
  assert not os.listdir(tmp_path)  # refused before anything is written


@pytest.mark.slow
def test_a_real_env_expert_end_to_end(tmp_path):
  """The same tiny run on the real ant_touch_2 physics (compiles the MxT env: minutes on 2 CPU cores)."""
  config = tiny_config(**{"ppo.num_timesteps": 40, "ppo.num_evals": 2, "eval_episodes": 2})
  [row] = experts.train_experts(config, str(tmp_path))
  expert = experts.load_expert(experts.expert_workdir(str(tmp_path), ENV))
  assert (row["env"], row["steps"]) == (ENV, expert.step)
  env = envs.make(ENV, config=expert.env_config)
  obs = jax.jit(env.reset)(jax.random.PRNGKey(0)).obs
  action = jax.jit(expert.act_fn())(obs, jax.random.PRNGKey(1))
  assert action.shape == (env.action_size,)
  for e in json.load(open(os.path.join(expert.workdir, experts.SNAPSHOT_EVAL_FILE)))["steps"].values():
    assert e["episode_return"] < -100 or e["success"] > 0  # the reference reward: -distance per step, 1000 steps
