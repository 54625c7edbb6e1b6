"""The comparison runner's environments are rl-zoo3's for the entry (make_zoo_vec_env), and the entry's callbacks run."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize

from sb3_trpo_critic.benchmarks.run import RunSpec, run_one, vec_env_classes
from sb3_trpo_critic.zoo import load_zoo_hyperparameters
from sb3_trpo_critic.zoo.envs import make_zoo_vec_env


class MarkedVecEnv(VecEnvWrapper):
    """A pass-through vec_env_wrapper, to see where rl-zoo3 puts it."""

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


class CountingCallback(BaseCallback):
    """An entry's callback that counts its calls (class attributes: rl-zoo3 makes the instance)."""

    training_starts = 0
    steps = 0

    def _on_training_start(self) -> None:
        CountingCallback.training_starts += 1

    def _on_step(self) -> bool:
        CountingCallback.steps += 1
        return True


WRAPPED = {"frame_stack": 2, "vec_env_wrapper": f"{__name__}.MarkedVecEnv", "normalize": True}


def test_training_env_is_wrapped_in_rl_zoo3s_order():
    zoo = load_zoo_hyperparameters("trpo_critic", "CartPole-v1", overrides=WRAPPED)
    env = make_zoo_vec_env(zoo, seed=0)
    try:
        # create_envs: vec_env_wrapper, then VecNormalize, then VecFrameStack
        assert vec_env_classes(env) == ("VecFrameStack", "VecNormalize", "MarkedVecEnv", "DummyVecEnv")
        assert env.num_envs == zoo.n_envs == 2
        assert env.observation_space.shape == (8,)  # 2 stacked CartPole observations
        observation = env.reset()
        assert isinstance(observation, np.ndarray) and observation.shape == (2, 8)
        assert isinstance(env, VecEnvWrapper)
        normalize = env.venv
        assert isinstance(normalize, VecNormalize) and normalize.training and normalize.norm_reward
        assert normalize.gamma == zoo.model_kwargs["gamma"]  # rl-zoo3 passes the entry's gamma
    finally:
        env.close()


def test_eval_env_has_the_same_wrappers_and_frozen_normalization():
    zoo = load_zoo_hyperparameters("trpo_critic", "CartPole-v1", overrides=WRAPPED)
    env = make_zoo_vec_env(zoo, seed=0, eval_env=True)
    try:
        assert vec_env_classes(env) == ("VecFrameStack", "VecNormalize", "MarkedVecEnv", "DummyVecEnv")
        assert env.num_envs == 1
        assert env.observation_space.shape == (8,)
        assert isinstance(env, VecEnvWrapper)
        normalize = env.venv
        assert isinstance(normalize, VecNormalize) and not normalize.training and not normalize.norm_reward
    finally:
        env.close()


def test_env_copies_are_seeded_from_the_seed():
    zoo = load_zoo_hyperparameters("trpo_critic", "CartPole-v1")
    assert not zoo.normalize and zoo.frame_stack is None
    env = make_zoo_vec_env(zoo, seed=5)
    try:
        expected = np.stack([gym.make("CartPole-v1").reset(seed=5 + i)[0] for i in range(zoo.n_envs)])
        np.testing.assert_array_equal(env.reset(), expected)
    finally:
        env.close()


def test_a_stray_vecnormalize_file_in_the_working_folder_is_not_loaded(tmp_path, monkeypatch):
    """rl-zoo3 loads <env_id>/vecnormalize.pkl from the working folder when there is one; the runner must not."""
    zoo = load_zoo_hyperparameters("trpo_critic", "CartPole-v1", overrides={"normalize": True})
    stray = VecNormalize(make_zoo_vec_env(load_zoo_hyperparameters("trpo_critic", "CartPole-v1"), seed=0), clip_obs=0.5)
    (tmp_path / "CartPole-v1").mkdir()
    stray.save(str(tmp_path / "CartPole-v1" / "vecnormalize.pkl"))
    monkeypatch.chdir(tmp_path)
    env = make_zoo_vec_env(zoo, seed=0)
    try:
        assert isinstance(env, VecNormalize) and env.clip_obs == 10.0  # a new VecNormalize, not the stray one
    finally:
        env.close()
        stray.close()


@pytest.fixture(scope="module")
def wrapped_run():
    CountingCallback.training_starts = CountingCallback.steps = 0
    hyperparams = (
        ("frame_stack", 2),
        ("vec_env_wrapper", f"{__name__}.MarkedVecEnv"),
        ("callback", f"{__name__}.CountingCallback"),
    )
    spec = RunSpec("trpo_critic", "CartPole-v1", 0, timesteps=1024, eval_points=1, eval_episodes=1, hyperparams=hyperparams)
    return run_one(spec), CountingCallback.training_starts, CountingCallback.steps


def test_runner_trains_and_evaluates_on_the_entrys_environment(wrapped_run):
    result = wrapped_run[0]
    assert result.environment is not None
    assert result.environment.vec_env == ("VecFrameStack", "MarkedVecEnv", "DummyVecEnv")
    assert "(8,)" in result.environment.observation_space  # what the model was built on
    assert result.environment.frame_stack == 2 and result.environment.n_envs == 2
    assert result.environment.vec_env_wrapper == f"{__name__}.MarkedVecEnv"
    assert result.environment.normalize_kwargs is None  # the CartPole entry has no VecNormalize
    # the evaluations ran on the stacked evaluation env (an unstacked one fails to predict)
    assert len(result.curve.mean_return) == 2 and result.final_mean_return > 0
    assert result.zoo_rule == "exact" and result.zoo_entry == "CartPole-v1"


def test_runner_passes_the_entrys_callbacks_to_learn(wrapped_run):
    result, training_starts, steps = wrapped_run
    assert training_starts == 1
    assert steps == result.timesteps // result.environment.n_envs  # called at every step of the vec env
    assert result.environment.callbacks == ("CountingCallback",)


def test_build_training_loads_the_entry_or_the_defaults_and_builds_the_model():
    """The one model builder of the comparison runner and the throughput benchmark."""
    import torch as th

    from sb3_trpo_critic.benchmarks.run import build_training

    threads = th.get_num_threads()
    try:
        spec = RunSpec("trpo_critic", "CartPole-v1", 3, threads=3, hyperparams=(("n_envs", 4), ("frame_stack", 2)))
        zoo, env, model = build_training(spec, device="cpu", tensorboard_log="tb")  # arguments beside the entry's
        assert th.get_num_threads() == 3
        assert (zoo.entry, zoo.rule, zoo.n_envs, zoo.raw["n_envs"]) == ("CartPole-v1", "exact", 4, 4)
        assert model.env is env and env.num_envs == model.n_envs == 4 and model.device.type == "cpu"
        assert model.tensorboard_log == "tb"
        assert vec_env_classes(env) == ("VecFrameStack", "DummyVecEnv") and model.seed == 3
        assert model.n_steps == zoo.model_kwargs["n_steps"] and model.verbose == 0
        env.close()
        zoo, env, model = build_training(RunSpec("ppo", "Pendulum-v1", 0, defaults=True))
        assert (zoo.entry, zoo.rule, model.n_envs, model.n_steps) == ("", "constructor-defaults", 1, 2048)
        assert vec_env_classes(env) == ("DummyVecEnv",)
        env.close()
    finally:
        th.set_num_threads(threads)
