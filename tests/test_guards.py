"""What comes from outside: non-finite observations and rewards, and save files that are not TRPOCritic's."""

import io
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.guards import NonFiniteDataError
from tests.envs import BoxTargetEnv

SMALL: dict[str, Any] = dict(n_steps=64, batch_size=64, n_critic_updates=1, cg_max_steps=3, seed=0, device="cpu")


class Poisoned(gym.Wrapper):
    """Returns NaN in the observation or the reward at step ``at`` (counted over the env's lifetime)."""

    def __init__(self, env: gym.Env, what: str, at: int):
        super().__init__(env)
        self.what, self.at, self.steps = what, at, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at:
            if self.what == "observation":
                obs = obs.copy()
                obs[2] = np.nan
            else:
                reward = float("nan")
        return obs, reward, terminated, truncated, info


def poisoned_env(what: str, at: int, normalize: bool = False):
    env = make_vec_env(lambda: Poisoned(BoxTargetEnv(dim=4), what, at), n_envs=2, seed=0)
    return VecNormalize(env) if normalize else env


def test_nan_observation_is_named_at_the_step_it_arrives():
    model = TRPOCritic("MlpPolicy", poisoned_env("observation", at=99), **SMALL)
    message = r"non-finite observation \(nan\) at num_timesteps=198: env index 0, element \(2,\)"
    with pytest.raises(NonFiniteDataError, match=message):
        model.learn(1000)
    assert model.num_timesteps == 198


def test_nan_terminal_observation_is_named():
    model = TRPOCritic("MlpPolicy", poisoned_env("observation", at=50), **SMALL)  # episodes end every 50 steps
    with pytest.raises(NonFiniteDataError, match=r"non-finite terminal observation \(nan\) at num_timesteps=100"):
        model.learn(1000)


@pytest.mark.parametrize("normalize", [False, True])
def test_nan_reward_is_named_and_training_stops(normalize):
    """Under VecNormalize one NaN reward would poison the return statistics and silently stop learning."""
    model = TRPOCritic("MlpPolicy", poisoned_env("reward", at=70, normalize=normalize), **SMALL)
    with pytest.raises(NonFiniteDataError, match=r"non-finite reward \(nan\) at num_timesteps=140"):
        model.learn(1000)


def test_nan_observation_in_a_dict_names_the_key():
    class DictEnv(gym.Env):
        observation_space = spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Box(-1, 1, (3,))})
        action_space = spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}, {}

        def step(self, action):
            self.t += 1
            b = np.full(3, np.inf if self.t == 5 else 0.0, np.float32)
            return {"a": np.zeros(2, np.float32), "b": b}, 1.0, False, self.t >= 20, {}

    model = TRPOCritic("MultiInputPolicy", make_vec_env(DictEnv, n_envs=1), **SMALL)
    with pytest.raises(NonFiniteDataError, match=r"non-finite observation \(inf\) at num_timesteps=5: key 'b', env index 0"):
        model.learn(200)


def test_the_check_runs_before_the_users_callbacks_and_keeps_them():
    seen = []

    class Recorder(BaseCallback):
        def _on_step(self):
            seen.append(self.num_timesteps)
            return True

    model = TRPOCritic("MlpPolicy", poisoned_env("observation", at=10), **SMALL)
    with pytest.raises(NonFiniteDataError):
        model.learn(1000, callback=[Recorder()])
    assert seen == list(range(2, 20, 2))  # the user's callback never saw the poisoned step
    # a clean environment trains with the user's callbacks, list or single or function
    TRPOCritic("MlpPolicy", "CartPole-v1", **SMALL).learn(128, callback=Recorder())
    TRPOCritic("MlpPolicy", "CartPole-v1", **SMALL).learn(128, callback=lambda _locals, _globals: True)


def test_load_refuses_a_model_saved_by_sb3_contrib_trpo(tmp_path):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    sb3_contrib.TRPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, device="cpu").save(tmp_path / "contrib")
    with pytest.raises(
        ValueError, match=r"contrib\.zip holds a model saved by sb3_contrib\.TRPO, not by TRPOCritic.*migrating"
    ):
        TRPOCritic.load(tmp_path / "contrib")


def test_load_refuses_a_ppo_model(tmp_path):
    PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, device="cpu").save(tmp_path / "ppo.zip")
    with pytest.raises(ValueError, match="holds a model saved by PPO"):
        TRPOCritic.load(tmp_path / "ppo.zip")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_load_of_a_truncated_file_says_so(tmp_path, keep):
    TRPOCritic("MlpPolicy", "Pendulum-v1", **SMALL).save(tmp_path / "model")
    data = (tmp_path / "model.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"cut\.zip is truncated or corrupt"):
        TRPOCritic.load(tmp_path / "cut.zip")


def test_load_of_a_corrupt_member_says_so(tmp_path):
    TRPOCritic("MlpPolicy", "Pendulum-v1", **SMALL).save(tmp_path / "model")
    data = bytearray((tmp_path / "model.zip").read_bytes())
    start = data.index(b"policy.pth") + 200  # inside the stored policy weights
    data[start : start + 8] = bytes(8)
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad\.zip is (corrupt|truncated or corrupt)"):
        TRPOCritic.load(tmp_path / "bad.zip")


def test_load_of_a_good_file_from_a_path_or_a_file_object(tmp_path):
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", target_kl=0.02, **SMALL)
    model.save(tmp_path / "model")
    assert TRPOCritic.load(tmp_path / "model").target_kl == 0.02
    buffer = io.BytesIO((tmp_path / "model.zip").read_bytes())
    assert TRPOCritic.load(buffer).target_kl == 0.02
