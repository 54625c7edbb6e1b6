"""The EnvPool engine (sb3_trpo_critic.envpool): SB3's VecEnv contract on EnvPool's environments, compared with
gymnasium's where the comparison means something (EnvPool's MuJoCo is its own implementation: no bit-identical
values); TRPOCritic on it; the comparison runner's and the zoo command's --vec-env envpool."""

from __future__ import annotations

import json
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import ClipAction

pytest.importorskip("envpool")

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.envpool import EnvPoolError, EnvPoolVecEnv, make_envpool_vec_env
from sb3_trpo_critic.extras import MissingExtraError

pytest.importorskip("mujoco")

MUJOCO = ["Hopper-v5", "HalfCheetah-v5"]


def steps(venv: Any, actions: list[np.ndarray]) -> list[Any]:
    """Step ``venv`` once per action batch; the (obs, rewards, dones, infos) of each step."""
    return [venv.step(action) for action in actions]


def reset(venv: Any) -> np.ndarray:
    """``venv.reset()``'s observations (an array: the environments here have Box observations)."""
    return np.asarray(venv.reset())


def zeros(venv: Any, count: int) -> list[np.ndarray]:
    return [np.zeros((venv.num_envs, *venv.action_space.shape), dtype=np.float32)] * count


# --- spaces, values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", MUJOCO)
def test_spaces_and_dtypes_are_gymnasium_s(env_id):
    reference = make_vec_env(env_id, n_envs=2, seed=0)
    venv = make_envpool_vec_env(env_id, 2, seed=0)
    for ours, theirs in ((venv.observation_space, reference.observation_space), (venv.action_space, reference.action_space)):
        assert isinstance(ours, gym.spaces.Box) and isinstance(theirs, gym.spaces.Box)
        assert (ours.shape, ours.dtype) == (theirs.shape, theirs.dtype)
        assert np.array_equal(ours.low, theirs.low) and np.array_equal(ours.high, theirs.high)
    for env in (reference, venv):
        obs = np.asarray(env.reset())
        action = np.stack([env.action_space.sample() for _ in range(2)])
        next_obs, rewards, dones, infos = steps(env, [action])[0]
        assert obs.shape == next_obs.shape == (2, *np.shape(venv.observation_space.sample()))
        assert obs.dtype == next_obs.dtype == env.observation_space.dtype
        assert (rewards.dtype, rewards.shape, dones.dtype, dones.shape) == (np.float32, (2,), np.bool_, (2,))
        assert len(infos) == 2 and all(isinstance(info, dict) and info["TimeLimit.truncated"] is False for info in infos)
    assert {"x_position", "x_velocity"} <= set(infos[0])  # EnvPool's info values, per copy
    assert venv.get_attr("render_mode") == [None, None]


def test_reset_observations_are_gymnasium_s_initial_state_with_its_noise():
    """Hopper-v5 starts at its initial pose plus uniform noise of reset_noise_scale (0.005) on every coordinate."""
    base, _ = gym.make("Hopper-v5", reset_noise_scale=0.0).reset(seed=0)
    obs = np.asarray(make_envpool_vec_env("Hopper-v5", 32, seed=0).reset())
    deviation = np.abs(obs - base)
    assert deviation.max() <= 0.005 + 1e-12
    assert deviation.max() > 0.004 and len({row.tobytes() for row in obs}) == 32  # the noise is there, per copy


def test_rewards_are_the_sum_of_gymnasium_s_terms_under_a_known_action():
    """Hopper-v5: reward = healthy_reward (1) + x_velocity - 0.001 |a|^2; HalfCheetah-v5: reward_ctrl = -0.1 |a|^2,
    as gymnasium computes them for the same action."""
    action = np.full((4, 3), 0.5, dtype=np.float32)
    venv = make_envpool_vec_env("Hopper-v5", 4, seed=0)
    venv.reset()
    for _, rewards, dones, infos in steps(venv, [action] * 5):
        assert not dones.any()
        expected = [1.0 + info["x_velocity"] - 1e-3 * float(np.sum(action[0] ** 2)) for info in infos]
        np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-5)
    cheetah = make_envpool_vec_env("HalfCheetah-v5", 2, seed=0)
    cheetah.reset()
    action = np.full((2, 6), 0.5, dtype=np.float32)
    _, rewards, _, infos = cheetah.step(action)
    env = gym.make("HalfCheetah-v5")
    env.reset(seed=0)
    gym_info = env.step(action[0])[4]
    for reward, info in zip(rewards, infos, strict=True):
        assert info["reward_ctrl"] == pytest.approx(gym_info["reward_ctrl"]) == pytest.approx(-0.1 * 6 * 0.25)
        assert reward == pytest.approx(info["reward_run"] + info["reward_ctrl"], abs=1e-5)


# --- episode boundaries ------------------------------------------------------------------------------


def test_time_limit_dones_terminal_observations_and_the_next_episode():
    """With max_episode_steps=5, the 5th, 10th, 15th steps end episodes as truncated; each such step returns the
    next episode's first observation, the last one in terminal_observation; the step after it is the new
    episode's first step, taken with its action (no extra reset step)."""
    base, _ = gym.make("Hopper-v5", reset_noise_scale=0.0).reset(seed=0)
    venv = make_envpool_vec_env("Hopper-v5", 3, seed=0, env_kwargs={"max_episode_steps": 5})
    obs: Any = venv.reset()
    for step, (next_obs, _, dones, infos) in enumerate(steps(venv, zeros(venv, 15)), start=1):
        assert dones.tolist() == [step % 5 == 0] * 3, step
        for index, info in enumerate(infos):
            assert info["TimeLimit.truncated"] is (step % 5 == 0)
            assert ("terminal_observation" in info) is (step % 5 == 0) and ("episode" in info) is (step % 5 == 0)
            if step % 5 == 0:
                terminal = info["terminal_observation"]
                assert terminal.shape == (11,) and not np.array_equal(terminal, next_obs[index])
                assert np.abs(next_obs[index] - base).max() <= 0.005 + 1e-12  # a first observation
                assert np.abs(terminal - base).max() > 0.005  # the body has moved in 5 steps
                assert info["episode"]["l"] == 5 and isinstance(info["episode"]["r"], float)
            else:
                assert not np.array_equal(next_obs[index], obs[index])  # it stepped
        obs = next_obs
    # the action of the step after a done is used: the same seed, another action on step 6 only
    trajectories = []
    for sixth in (0.0, 1.0):
        venv = make_envpool_vec_env("Hopper-v5", 3, seed=0, env_kwargs={"max_episode_steps": 5})
        venv.reset()
        actions = zeros(venv, 6)
        actions[5] = np.full_like(actions[5], sixth)
        trajectories.append(steps(venv, actions))
    assert np.array_equal(trajectories[0][4][0], trajectories[1][4][0])  # the same first observations
    assert not np.allclose(trajectories[0][5][0], trajectories[1][5][0])  # step 6 followed its action


def _unhealthy(obs: np.ndarray) -> bool:
    """Hopper-v5's termination: z < 0.7, |angle| > 0.2, or a state coordinate outside [-100, 100]."""
    return bool(obs[0] < 0.7 or abs(obs[1]) > 0.2 or np.abs(obs[1:]).max() > 100)


def _large_random_actions(count: int, n_envs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, size=(n_envs, 3)).astype(np.float32) for _ in range(count)]


def test_a_fall_terminates_and_is_not_truncation():
    venv = make_envpool_vec_env("Hopper-v5", 4, seed=0)
    venv.reset()
    ended = 0
    lengths = np.zeros(4, dtype=int)
    for obs, _, dones, infos in steps(venv, _large_random_actions(200, 4)):
        lengths += 1
        for index in np.flatnonzero(dones):
            info = infos[index]
            assert info["TimeLimit.truncated"] is False and lengths[index] < 1000
            assert _unhealthy(info["terminal_observation"]) and not _unhealthy(obs[index])
            assert info["episode"]["l"] == lengths[index]
            ended += 1
        lengths[dones] = 0
    assert ended >= 8


def test_a_fall_on_the_last_step_of_the_time_limit_is_termination():
    """As gymnasium's TimeLimit: terminated and truncated on the same step is not a timeout (EnvPool's own limit
    reports it as truncation only)."""
    actions = _large_random_actions(200, 1)
    venv = make_envpool_vec_env("Hopper-v5", 1, seed=3)
    venv.reset()
    length = next(step for step, (_, _, dones, _) in enumerate(steps(venv, actions), start=1) if dones[0])
    venv = make_envpool_vec_env("Hopper-v5", 1, seed=3, env_kwargs={"max_episode_steps": length})
    venv.reset()
    *_, (_, _, dones, infos) = steps(venv, actions[:length])
    assert dones[0] and infos[0]["TimeLimit.truncated"] is False and _unhealthy(infos[0]["terminal_observation"])
    venv = make_envpool_vec_env("Hopper-v5", 1, seed=3, env_kwargs={"max_episode_steps": length - 1})
    venv.reset()
    *_, (_, _, dones, infos) = steps(venv, actions[: length - 1])
    assert dones[0] and infos[0]["TimeLimit.truncated"] is True and not _unhealthy(infos[0]["terminal_observation"])


def test_episode_statistics_are_monitor_s():
    venv = make_envpool_vec_env("Hopper-v5", 2, seed=0)
    assert isinstance(venv, VecMonitor) and isinstance(venv.venv, EnvPoolVecEnv)
    venv.reset()
    returns = np.zeros(2)
    episodes = []
    for _, rewards, dones, infos in steps(venv, _large_random_actions(300, 2)):
        returns += rewards
        for index in np.flatnonzero(dones):
            episode = infos[index]["episode"]
            assert type(episode["r"]) is float and type(episode["l"]) is int and set(episode) == {"r", "l", "t"}
            assert episode["r"] == round(returns[index], 6)
            episodes.append(episode)
        returns[dones] = 0
    assert len(episodes) >= 4
    mean, _ = evaluate_policy(TRPOCritic("MlpPolicy", venv, n_steps=64, device="cpu"), venv, n_eval_episodes=2)
    assert isinstance(mean, float)  # from the episodes' "r", as with Monitor


# --- seeding -----------------------------------------------------------------------------------------


def test_copy_i_is_seeded_with_seed_plus_i_and_seed_then_reset_starts_again():
    three: Any = EnvPoolVecEnv("Hopper-v5", 3, seed=10).reset()
    assert np.array_equal(three[1], reset(EnvPoolVecEnv("Hopper-v5", 1, seed=11))[0])
    assert np.array_equal(three, reset(EnvPoolVecEnv("Hopper-v5", 3, seed=10, env_kwargs={"num_threads": 1})))
    venv = EnvPoolVecEnv("Hopper-v5", 3, seed=99)
    first: Any = venv.reset()
    assert not np.array_equal(np.asarray(venv.reset()), first)  # a reset without a seed goes on with the random streams
    assert venv.seed(10) == [10, 11, 12]
    actions = _large_random_actions(60, 3)
    runs = []
    for env in (venv, EnvPoolVecEnv("Hopper-v5", 3, seed=10, env_kwargs={"num_threads": 1})):  # whatever the threads
        obs: Any = env.reset()
        assert np.array_equal(obs, three)
        runs.append([(step[0], step[1], step[2]) for step in steps(env, actions)])
    for (obs_a, rew_a, done_a), (obs_b, rew_b, done_b) in zip(*runs, strict=True):
        assert np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b) and np.array_equal(done_a, done_b)
    venv.seed(2**32 - 2)  # SB3's seed(None) draws up to 2**32: EnvPool takes seeds modulo 2**31
    venv.reset()


# --- what the adapter does not support ----------------------------------------------------------------


def test_unsupported_calls_say_so():
    venv = EnvPoolVecEnv("Hopper-v5", 2, seed=0)
    venv.reset()
    assert venv.env_is_wrapped(gym.Wrapper) == [False, False] and venv.env_is_wrapped(gym.Wrapper, indices=1) == [False]
    assert venv.get_attr("render_mode", indices=[0]) == [None] and not venv.has_attr("unwrapped")
    with pytest.raises(AttributeError, match=r"EnvPoolVecEnv \(Hopper-v5 on EnvPool\) has no per-environment attribute"):
        venv.get_attr("model")
    for call in (lambda: venv.set_attr("x", 1), lambda: venv.env_method("render"), venv.render, venv.get_images):
        with pytest.raises(NotImplementedError, match="on EnvPool"):
            call()
    venv.set_options({"low": 0})
    with pytest.raises(NotImplementedError, match="does not take reset options"):
        venv.reset()
    with pytest.raises(EnvPoolError, match="does not render"):
        EnvPoolVecEnv("Hopper-v5", 1, env_kwargs={"render_mode": "rgb_array"})
    with pytest.raises(EnvPoolError, match=r"Hopper-v5: EnvPool's version has no option 'ctrl_weight' .*ctrl_cost_weight"):
        EnvPoolVecEnv("Hopper-v5", 1, env_kwargs={"ctrl_weight": 1.0})
    with pytest.raises(EnvPoolError, match=r"the gymnasium wrapper ClipAction cannot wrap EnvPool's environments"):
        make_envpool_vec_env("Hopper-v5", 1, wrapper_class=ClipAction)
    # an option EnvPool takes is passed: a heavier control cost, a shorter episode
    venv = EnvPoolVecEnv("Hopper-v5", 1, seed=0, env_kwargs={"ctrl_cost_weight": 1.0, "max_episode_steps": 3})
    venv.reset()
    outcomes = steps(venv, [np.ones((1, 3), dtype=np.float32)] * 3)
    assert [bool(dones[0]) for _, _, dones, _ in outcomes] == [False, False, True]
    assert venv.max_episode_steps == 3 and venv.spec.id == "Hopper-v5"


def test_an_id_without_an_envpool_version_is_named_with_close_ones():
    with pytest.raises(EnvPoolError) as error:
        make_envpool_vec_env("Hopper-v2", 1)
    message = str(error.value)
    assert message.startswith("Hopper-v2 has no EnvPool version (the 'envpool' extra's engine, envpool ")
    assert "close EnvPool ids: " in message and "Hopper-v5" in message and "vec_env='dummy'" in message
    assert isinstance(error.value, gym.error.Error) and isinstance(error.value, ValueError)  # a user error


def test_without_envpool_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)
    with pytest.raises(MissingExtraError) as error:
        make_envpool_vec_env("Hopper-v5", 1)
    assert str(error.value) == (
        "the EnvPool engine (vec_env='envpool') needs the 'envpool' extra (envpool is not installed): "
        'pip install "sb3-trpo-critic[envpool]"'
    )


# --- training ----------------------------------------------------------------------------------------


def test_trpo_critic_trains_on_envpool_under_vec_normalize_saves_loads_and_predicts(tmp_path):
    env = VecNormalize(make_envpool_vec_env("Hopper-v5", 2, seed=0))
    model = TRPOCritic("MlpPolicy", env, n_steps=128, batch_size=64, n_critic_updates=1, seed=0, device="cpu")
    logged: dict[str, float] = {}

    class Capture(KVWriter):
        def write(self, key_values, key_excluded, step=0):
            logged.update(key_values)

    model.set_logger(Logger(folder=None, output_formats=[Capture()]))
    model.learn(512)
    episodes = model.ep_info_buffer
    assert model.num_timesteps == 512 and episodes is not None and len(episodes) > 0
    assert all(isinstance(info["r"], float) for info in episodes)
    assert logged["rollout/ep_rew_mean"] == pytest.approx(np.mean([info["r"] for info in episodes]))
    model.save(tmp_path / "model.zip")
    env.save(str(tmp_path / "vecnormalize.pkl"))
    eval_env = VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), make_envpool_vec_env("Hopper-v5", 2, seed=100))
    eval_env.training, eval_env.norm_reward = False, False
    loaded = TRPOCritic.load(tmp_path / "model.zip", env=eval_env, device="cpu")
    obs: Any = eval_env.reset()
    actions, _ = loaded.predict(obs, deterministic=True)
    expected, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (2, 3) and np.array_equal(actions, expected)
    assert np.all(np.abs(actions) <= 1)
    loaded.learn(256, reset_num_timesteps=False)  # and trains on from there
    assert loaded.num_timesteps == 768


# --- the comparison runner ---------------------------------------------------------------------------


def test_the_runner_builds_the_zoo_stack_on_envpool():
    pytest.importorskip("rl_zoo3")
    from sb3_trpo_critic.benchmarks.results import RunSpec
    from sb3_trpo_critic.benchmarks.run import build_training, vec_env_classes
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters, make_zoo_vec_env

    zoo = load_zoo_hyperparameters("trpo_critic", "Hopper-v5")
    assert zoo.normalize
    engines = ("dummy", "envpool")
    stacks: dict[str, Any] = {vec_env: make_zoo_vec_env(zoo, 0, vec_env=vec_env) for vec_env in engines}
    evals: dict[str, Any] = {vec_env: make_zoo_vec_env(zoo, 7, eval_env=True, vec_env=vec_env) for vec_env in engines}
    assert vec_env_classes(stacks["dummy"]) == ("VecNormalize", "DummyVecEnv")
    assert vec_env_classes(stacks["envpool"]) == ("VecNormalize", "EnvPoolMonitor", "EnvPoolVecEnv")
    for stack in (stacks, evals):
        dummy, envpool = stack["dummy"], stack["envpool"]
        assert isinstance(dummy, VecNormalize) and isinstance(envpool, VecNormalize)
        assert dummy.num_envs == envpool.num_envs
        for key in ("training", "norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"):
            assert getattr(dummy, key) == getattr(envpool, key), key
        assert dummy.observation_space == envpool.observation_space and dummy.action_space == envpool.action_space
    assert evals["envpool"].num_envs == 1 and not evals["envpool"].training and not evals["envpool"].norm_reward
    # the seeds: copy i of the training environment gets seed + i, as in the DummyVecEnv
    unwrapped = stacks["envpool"].unwrapped
    assert np.array_equal(reset(unwrapped)[1], reset(EnvPoolVecEnv("Hopper-v5", 1, seed=1))[0])
    # env_kwargs of the entry are passed; a gymnasium wrapper cannot be
    short = load_zoo_hyperparameters("trpo_critic", "Hopper-v5", {"env_kwargs": {"max_episode_steps": 7}})
    unwrapped = make_zoo_vec_env(short, 0, vec_env="envpool").unwrapped
    assert isinstance(unwrapped, EnvPoolVecEnv) and unwrapped.max_episode_steps == 7
    wrapped = load_zoo_hyperparameters(
        "trpo_critic", "Hopper-v5", {"env_wrapper": "sb3_contrib.common.wrappers.TimeFeatureWrapper"}
    )
    with pytest.raises(EnvPoolError, match=r"env_wrapper TimeFeatureWrapper wraps a gymnasium\.Env"):
        make_zoo_vec_env(wrapped, 0, vec_env="envpool")
    with pytest.raises(ValueError, match="unknown vec_env 'subproc'"):
        make_zoo_vec_env(zoo, 0, vec_env="subproc")
    training = build_training(RunSpec("trpo_critic", "Hopper-v5", 0, hyperparams=(("n_envs", 2),), vec_env="envpool"))
    assert vec_env_classes(training.env) == ("VecNormalize", "EnvPoolMonitor", "EnvPoolVecEnv")
    assert training.model.get_env() is training.env and training.env.num_envs == 2


def test_the_runner_records_the_engine_in_the_result_and_its_name(tmp_path):
    pytest.importorskip("rl_zoo3")
    from sb3_trpo_critic.benchmarks import compare
    from sb3_trpo_critic.benchmarks.results import RESULT_VERSION, ResultStore, RunSpec, read_result
    from sb3_trpo_critic.benchmarks.run import run_one

    hyperparams = (("n_steps", 128), ("n_envs", 2))
    spec = RunSpec("trpo_critic", "Hopper-v5", 0, 256, 1, 1, hyperparams=hyperparams, vec_env="envpool")
    assert spec.name.startswith("trpo_critic__Hopper-v5__seed0__envpool__hp")
    result = run_one(spec)
    assert result.vec_env == "envpool" and result.timesteps == 256
    assert result.environment is not None and result.environment.vec_env[-1] == "EnvPoolVecEnv"
    path = ResultStore(tmp_path).write(spec, result)
    data = json.loads(path.read_text())
    assert data["version"] == RESULT_VERSION == 3 and data["vec_env"] == "envpool"
    assert read_result(path) == result
    # the command line
    args = compare.build_parser().parse_args(["run", "--envs", "Hopper-v5", "--vec-env", "envpool", "--out", "x"])
    args.hyperparams, args.threads = (), 1
    assert {spec.vec_env for spec in compare.build_specs(args)} == {"envpool"}
    args = compare.build_parser().parse_args(["run", "--envs", "Hopper-v5", "--out", "x"])
    args.hyperparams, args.threads = (), 1
    assert {spec.vec_env for spec in compare.build_specs(args)} == {"dummy"}


# --- the zoo command ---------------------------------------------------------------------------------


def test_the_zoo_command_trains_on_envpool(tmp_path, capsys):
    pytest.importorskip("rl_zoo3")
    from sb3_trpo_critic.zoo.cli import main
    from sb3_trpo_critic.zoo.command import ZooExperimentManager, take_vec_env

    assert take_vec_env(["--env", "X", "--vec-env", "envpool", "-n", "8"]) == (["--env", "X", "-n", "8"], "envpool")
    assert take_vec_env(["--vec-env=envpool"]) == ([], "envpool")
    assert take_vec_env(["--vec-env", "subproc"]) == (["--vec-env", "subproc"], "dummy")  # rl-zoo3's own
    argv = ["train", "--algo", "trpo_critic", "--env", "Hopper-v5", "-f", str(tmp_path), "--seed", "1", "-n", "256"]
    argv += ["--eval-freq", "128", "--eval-episodes", "1", "--num-threads", "1", "--vec-env", "envpool"]
    argv += ["-params", "n_steps:128", "n_envs:2"]
    assert main(argv) == 0
    assert ZooExperimentManager.vec_env == "dummy"  # for this run only
    run = tmp_path / "trpo_critic" / "Hopper-v5_1"
    assert (run / "Hopper-v5.zip").is_file() and (run / "Hopper-v5" / "vecnormalize.pkl").is_file()
    monitor = (run / "envpool.monitor.csv").read_text().splitlines()
    assert json.loads(monitor[0][1:])["env_id"] == "Hopper-v5" and monitor[1] == "r,l,t" and len(monitor) > 2
    assert "ep_rew_mean" in capsys.readouterr().out
    # an environment EnvPool does not have: one line
    argv = ["train", "--algo", "trpo_critic", "--env", "Hopper-v2", "-f", str(tmp_path), "-n", "64", "--vec-env", "envpool"]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(lines) == 1 and "train: error: Hopper-v2 has no EnvPool version" in lines[0], lines


def test_the_zoo_command_without_envpool_names_the_extra(tmp_path, capsys, monkeypatch):
    pytest.importorskip("rl_zoo3")
    from sb3_trpo_critic.zoo.cli import main

    monkeypatch.setitem(sys.modules, "envpool", None)
    argv = ["train", "--algo", "trpo_critic", "--env", "Hopper-v5", "-f", str(tmp_path), "-n", "64", "--vec-env", "envpool"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("needs the 'envpool' extra (envpool is not installed): pip install \"sb3-trpo-critic[envpool]\"")
