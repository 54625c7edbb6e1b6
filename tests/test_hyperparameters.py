"""Hyperparameter validation: every invalid value is refused at construction, naming the parameter.

(That sb3_contrib.TRPO's arguments are accepted under the same names and defaults, and do what they do
there, is tested in ``tests/test_drop_in.py``.)
"""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from sb3_trpo_critic import TRPOCritic

INVALID = [
    ("target_kl", 0.0, "target_kl"),
    ("target_kl", -0.01, "target_kl"),
    ("target_kl", float("nan"), "target_kl"),
    ("target_kl", float("inf"), "target_kl"),
    ("cg_max_steps", 0, "cg_max_steps"),
    ("cg_max_steps", 2.5, "cg_max_steps"),
    ("cg_damping", -1e-3, "cg_damping"),
    ("cg_damping", float("nan"), "cg_damping"),
    ("cg_residual_tol", -1.0, "cg_residual_tol"),
    ("line_search_shrinking_factor", 0.0, r"line_search_shrinking_factor must be in the open interval \(0, 1\)"),
    ("line_search_shrinking_factor", 1.0, "line_search_shrinking_factor"),
    ("line_search_shrinking_factor", 1.5, "line_search_shrinking_factor"),
    ("line_search_max_iter", 0, "line_search_max_iter"),
    ("line_search_accept_ratio", 1.0, "line_search_accept_ratio"),
    ("line_search_accept_ratio", -0.1, "line_search_accept_ratio"),
    ("n_critic_updates", -1, "n_critic_updates"),
    ("batch_size", 0, "batch_size"),
    ("sub_sampling_factor", 0, "sub_sampling_factor"),
    ("gamma", 1.01, r"gamma must be in \[0, 1\]"),
    ("gamma", -0.1, "gamma"),
    ("gae_lambda", 1.5, "gae_lambda"),
    ("gae_lambda", float("nan"), "gae_lambda"),
    ("n_steps", 0, "n_steps"),
    ("learning_rate", 0.0, "learning_rate"),
    ("learning_rate", float("nan"), "learning_rate"),
    ("critic_max_grad_norm", 0.0, "critic_max_grad_norm"),
]


@pytest.mark.parametrize(("name", "value", "message"), INVALID)
def test_invalid_value_raises_naming_the_parameter(name, value, message):
    with pytest.raises(ValueError, match=message):
        TRPOCritic("MlpPolicy", "CartPole-v1", **{name: value})


def test_boundary_values_are_accepted():
    TRPOCritic(
        "MlpPolicy",
        "CartPole-v1",
        gamma=1.0,
        gae_lambda=0.0,
        cg_damping=0.0,
        n_critic_updates=0,
        line_search_max_iter=1,
        line_search_accept_ratio=0.0,
        cg_max_steps=1,
        device="cpu",
    )


def test_single_sample_rollout_with_advantage_normalization_is_refused():
    env = make_vec_env("CartPole-v1", n_envs=1)
    with pytest.raises(ValueError, match=r"n_steps \* n_envs > 1"):
        TRPOCritic("MlpPolicy", env, n_steps=1, normalize_advantage=True)
    TRPOCritic("MlpPolicy", env, n_steps=1, normalize_advantage=False, device="cpu")


def test_unsupported_action_space_is_refused():
    class TupleActionEnv(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,), dtype=np.float32)
        action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))

    with pytest.raises(ValueError, match="supports Box, Discrete, MultiDiscrete, MultiBinary action spaces, not Tuple"):
        TRPOCritic("MlpPolicy", make_vec_env(TupleActionEnv, n_envs=1))
