"""TRPOCritic is a drop-in replacement for ``sb3_contrib.TRPO``.

Every keyword argument of ``sb3_contrib.TRPO`` is accepted under the same name, in the same position,
with the same default, and does what it does there. One documented difference, of *meaning* and so of
default: ``target_kl`` bounds the KL summed over the dimensions of a Box/MultiBinary action, where
sb3_contrib averages it (see ``docs/migrating.md``), and its default ``None`` is sb3_contrib's default
``0.01`` in those units: 0.01 per action dimension. TRPOCritic's own arguments come after ``device``;
one of them, ``normalize_observations`` (on by default for Box observations that are not images), adds
its observation normalizer to ``policy_kwargs``.

The rest are sb3-contrib's own TRPO tests (``tests/test_run.py``, ``test_cnn.py``,
``test_dict_env.py``, ``test_save_load.py``) with TRPOCritic in TRPO's place and smaller budgets.
"""

import inspect
import os
from collections import OrderedDict
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import TRPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.envs import FakeImageEnv, IdentityEnvBox, SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecFrameStack,
    VecNormalize,
    VecTransposeImage,
    is_vecenv_wrapped,
)

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.normalization import NormalizedFlattenExtractor
from tests.envs import BoxTargetEnv

TRPO_PARAMETERS = inspect.signature(TRPO.__init__).parameters
CRITIC_PARAMETERS = inspect.signature(TRPOCritic.__init__).parameters
#: the keyword arguments of sb3_contrib.TRPO after ``policy`` and ``env``
TRPO_KEYWORDS = [name for name in TRPO_PARAMETERS if name not in ("self", "policy", "env")]


def test_every_trpo_argument_has_the_same_name_and_default():
    for name, trpo_parameter in TRPO_PARAMETERS.items():
        assert name in CRITIC_PARAMETERS, f"sb3_contrib.TRPO's argument {name!r} is missing"
        critic_parameter = CRITIC_PARAMETERS[name]
        assert critic_parameter.kind == trpo_parameter.kind, name
        if name not in ("target_kl", "cg_damping"):
            assert critic_parameter.default == trpo_parameter.default, (name, critic_parameter.default, trpo_parameter.default)
    # target_kl and cg_damping keep sb3_contrib's names; their default None is sb3_contrib's default trust region and
    # damping in full-KL units (0.01 and 0.1 per action dimension: test_defaults.py)
    assert TRPO_PARAMETERS["target_kl"].default == 0.01 and CRITIC_PARAMETERS["target_kl"].default is None
    assert TRPO_PARAMETERS["cg_damping"].default == 0.1 and CRITIC_PARAMETERS["cg_damping"].default is None
    # in the same relative order, and at the same positions up to ``device`` (TRPOCritic's own arguments come
    # after it), so that a positional call of TRPO means the same for TRPOCritic
    assert [name for name in CRITIC_PARAMETERS if name in TRPO_PARAMETERS] == list(TRPO_PARAMETERS)
    positional = list(TRPO_PARAMETERS)[: list(TRPO_PARAMETERS).index("_init_setup_model")]
    assert list(CRITIC_PARAMETERS)[: len(positional)] == positional
    # TRPOCritic's own arguments are optional: a call that is valid for TRPO is valid for TRPOCritic
    for name, parameter in CRITIC_PARAMETERS.items():
        if name not in TRPO_PARAMETERS:
            assert parameter.default is not inspect.Parameter.empty, name


@pytest.mark.parametrize(("dim", "radius"), [(1, 0.01), (6, 0.06)])
def test_the_default_trust_region_is_sb3_contrib_trpos_default(dim, radius):
    """sb3_contrib.TRPO's default bounds the KL averaged over the action's dimensions by 0.01; ours the sum by 0.01 * d."""
    model = TRPOCritic("MlpPolicy", BoxTargetEnv(dim=dim), n_steps=64, batch_size=64, device="cpu")
    assert model.target_kl is None
    assert model._current_target_kl() == pytest.approx(dim * TRPO_PARAMETERS["target_kl"].default) == radius


class MarkedRolloutBuffer(RolloutBuffer):
    """A rollout buffer class that the tests can recognize."""


def test_every_trpo_keyword_is_accepted_and_honoured(tmp_path):
    # one value per keyword of sb3_contrib.TRPO, none of them the default
    kwargs: dict[str, Any] = dict(
        learning_rate=5e-4,
        n_steps=64,
        batch_size=32,
        gamma=0.98,
        cg_max_steps=6,
        cg_damping=0.05,
        line_search_shrinking_factor=0.7,
        line_search_max_iter=5,
        n_critic_updates=3,
        gae_lambda=0.9,
        use_sde=True,
        sde_sample_freq=4,
        rollout_buffer_class=MarkedRolloutBuffer,
        rollout_buffer_kwargs={},
        normalize_advantage=False,
        target_kl=0.02,
        sub_sampling_factor=2,
        stats_window_size=7,
        tensorboard_log=str(tmp_path / "tb"),
        policy_kwargs=dict(net_arch=[16]),
        verbose=1,
        seed=3,
        device="cpu",
        _init_setup_model=True,
    )
    assert sorted(kwargs) == sorted(TRPO_KEYWORDS), "a keyword of sb3_contrib.TRPO is not covered"
    for name, value in kwargs.items():
        assert value != TRPO_PARAMETERS[name].default or name == "_init_setup_model", name

    trpo = TRPO("MlpPolicy", "Pendulum-v1", **kwargs)
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", **kwargs)
    for name, value in kwargs.items():
        if name == "device":
            assert model.device == trpo.device == th.device("cpu")
        elif name == "_init_setup_model":
            assert model.policy is not None and model.rollout_buffer is not None
        elif name == "policy_kwargs":
            # as given, plus the observation normalizer of TRPOCritic's normalize_observations (on by default for
            # Box observations; sb3_contrib.TRPO has no such argument)
            assert trpo.policy_kwargs == value
            assert model.policy_kwargs == {**value, "features_extractor_class": NormalizedFlattenExtractor}
        else:
            # stored under the same attribute as sb3_contrib.TRPO stores it
            attribute = {"stats_window_size": "_stats_window_size"}.get(name, name)
            assert getattr(trpo, attribute) == value, name
            assert getattr(model, attribute) == value, name
    # and they take effect, as in sb3_contrib.TRPO
    assert type(model.rollout_buffer) is MarkedRolloutBuffer
    assert model.rollout_buffer.buffer_size == trpo.rollout_buffer.buffer_size == 64
    assert model.lr_schedule(1.0) == trpo.lr_schedule(1.0) == 5e-4
    assert model.rollout_buffer.gamma == 0.98 and model.rollout_buffer.gae_lambda == 0.9
    assert model.policy.use_sde and model.policy.net_arch == [16]
    model.learn(128)
    assert model.num_timesteps == 128
    assert model.ep_info_buffer is not None and model.ep_info_buffer.maxlen == 7
    assert model.policy.optimizer.param_groups[0]["lr"] == 5e-4
    assert model.logger.name_to_value["train/critic_updates"] == 3 * 64 // 32
    assert model.logger.name_to_value["train/cg_iterations"] <= 6
    assert model.logger.name_to_value["train/kl_divergence"] <= 0.02 * (1 + 1e-5)
    assert len(os.listdir(tmp_path / "tb")) == 1  # TRPOCritic_1


# --- sb3-contrib tests/test_run.py ---------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_trpo(env_id):
    model = TRPOCritic("MlpPolicy", env_id, n_steps=128, seed=0, policy_kwargs=dict(net_arch=[16]), verbose=1)
    model.learn(total_timesteps=500)
    assert model.num_timesteps == 512


def test_trpo_params():
    # Test with gSDE and subsampling
    model = TRPOCritic(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=64,
        batch_size=32,
        use_sde=True,
        sub_sampling_factor=4,
        seed=0,
        policy_kwargs=dict(net_arch=dict(pi=[32], vf=[32])),
        verbose=1,
    )
    model.learn(total_timesteps=500)
    assert model.num_timesteps == 512


@pytest.mark.parametrize("stats_window_size", [1, 42])
def test_ep_buffers_stats_window_size(stats_window_size):
    """Set stats_window_size for logging to non-default value and check if
    ep_info_buffer and ep_success_buffer are initialized to the correct length"""
    model = TRPOCritic("MlpPolicy", "CartPole-v1", n_steps=64, stats_window_size=stats_window_size)
    model.learn(total_timesteps=10)
    assert model.ep_info_buffer is not None and model.ep_info_buffer.maxlen == stats_window_size
    assert model.ep_success_buffer is not None and model.ep_success_buffer.maxlen == stats_window_size


# --- sb3-contrib tests/test_cnn.py ---------------------------------------------------------------

SMALL_CNN: dict[str, Any] = dict(n_steps=64, batch_size=32, n_critic_updates=2, cg_max_steps=5)


@pytest.mark.parametrize("share_features_extractor", [False, True])
def test_cnn(tmp_path, share_features_extractor):
    # Fake grayscale with frameskip, lower resolution than Atari's 84x84x1
    env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=True)
    policy_kwargs = dict(share_features_extractor=share_features_extractor, features_extractor_kwargs=dict(features_dim=32))
    model = TRPOCritic("CnnPolicy", env, policy_kwargs=policy_kwargs, seed=0, **SMALL_CNN)
    policy = model.policy
    if share_features_extractor:
        # the objects are the same, not copies
        assert policy.pi_features_extractor is policy.vf_features_extractor
    else:
        assert policy.pi_features_extractor is not policy.vf_features_extractor
    model.learn(250)

    obs, _ = env.reset(seed=0)
    # FakeImageEnv is channel last by default and should be wrapped
    vec_env = model.get_env()
    assert vec_env is not None and is_vecenv_wrapped(vec_env, VecTransposeImage)
    # stochastic predict with channel last input
    for _ in range(10):
        model.predict(obs, deterministic=False)
    action, _ = model.predict(obs, deterministic=True)

    model.save(tmp_path / "cnn_model.zip")
    del model
    model = TRPOCritic.load(tmp_path / "cnn_model.zip")
    assert model.policy.share_features_extractor == share_features_extractor
    # the prediction is the same
    assert np.allclose(action, model.predict(obs, deterministic=True)[0])


# --- sb3-contrib tests/test_dict_env.py ----------------------------------------------------------


class DummyDictEnv(gym.Env):
    """Custom Environment for testing purposes only (sb3-contrib's, on gymnasium)"""

    def __init__(self, use_discrete_actions=False, channel_last=False, nested_dict_obs=False, vec_only=False):
        super().__init__()
        if use_discrete_actions:
            self.action_space = spaces.Discrete(3)
        else:
            self.action_space = spaces.Box(low=-1, high=1, shape=(2,), dtype=np.float32)
        obs_shape = (40, 40, 1) if channel_last else (1, 40, 40)
        self.observation_space = spaces.Dict(
            {
                "img": spaces.Box(low=0, high=255, shape=obs_shape, dtype=np.uint8),
                "vec": spaces.Box(low=-1, high=1, shape=(2,), dtype=np.float32),
                "discrete": spaces.Discrete(4),
            }
        )
        if vec_only:
            self.observation_space = spaces.Dict({"vec": spaces.Box(low=-1, high=1, shape=(2,), dtype=np.float32)})
        if nested_dict_obs:
            self.observation_space.spaces["nested-dict"] = spaces.Dict({"nested-dict-discrete": spaces.Discrete(4)})

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.observation_space.seed(seed)
        return self.observation_space.sample(), {}


def test_consistency():
    """
    Dict obs with vector only and the flattened obs give the same network and the same learning.

    (Without TRPOCritic's own observation normalization, which is on by default for the flattened Box
    observations only: ``normalize_observations=False``.)
    """
    dict_env = gym.wrappers.TimeLimit(DummyDictEnv(vec_only=True), 100)
    env = gym.wrappers.FlattenObservation(dict_env)
    obs, _ = dict_env.reset(seed=10)

    dict_model = TRPOCritic("MultiInputPolicy", dict_env, gamma=0.5, seed=1, n_steps=128, normalize_observations=False)
    action_before_learning_1, _ = dict_model.predict(obs, deterministic=True)
    dict_model.learn(total_timesteps=256)

    normal_model = TRPOCritic("MlpPolicy", env, gamma=0.5, seed=1, n_steps=128, normalize_observations=False)
    action_before_learning_2, _ = normal_model.predict(obs["vec"], deterministic=True)
    normal_model.learn(total_timesteps=256)

    action_1, _ = dict_model.predict(obs, deterministic=True)
    action_2, _ = normal_model.predict(obs["vec"], deterministic=True)
    assert np.allclose(action_before_learning_1, action_before_learning_2)
    assert np.allclose(action_1, action_2)
    assert not np.allclose(action_1, action_before_learning_1)  # it learned


DICT_KWARGS: dict[str, Any] = dict(
    n_steps=64,
    batch_size=64,
    n_critic_updates=2,
    policy_kwargs=dict(net_arch=dict(pi=[32], vf=[32]), features_extractor_kwargs=dict(cnn_output_dim=32)),
)


@pytest.mark.parametrize("channel_last", [False, True])
def test_dict_spaces(channel_last):
    """Mixed observations (image, vector, discrete) with MultiInputPolicy."""
    env = gym.wrappers.TimeLimit(DummyDictEnv(use_discrete_actions=True, channel_last=channel_last), 50)
    model = TRPOCritic("MultiInputPolicy", env, gamma=0.5, seed=1, **DICT_KWARGS)
    model.learn(total_timesteps=128)
    _, lengths = evaluate_policy(model, env, n_eval_episodes=2, warn=False, return_episode_rewards=True)
    assert lengths == [50, 50]


@pytest.mark.parametrize("channel_last", [False, True])
def test_dict_vec_framestack(channel_last):
    """Dict spaces and a VecEnvWrapper with MultiInputPolicy."""
    channels_order: dict[str, Any] = {"vec": None, "img": "last" if channel_last else "first"}
    env: VecEnv = DummyVecEnv([lambda: SimpleMultiObsEnv(random_start=True, discrete_actions=True, channel_last=channel_last)])
    env = VecFrameStack(env, n_stack=3, channels_order=channels_order)
    model = TRPOCritic("MultiInputPolicy", env, gamma=0.5, seed=1, **DICT_KWARGS)
    model.learn(total_timesteps=128)
    evaluate_policy(model, env, n_eval_episodes=1, warn=False)


def test_dict_vec_normalize():
    """GoalEnv-like Dict observations and VecNormalize with MultiInputPolicy."""
    env = VecNormalize(DummyVecEnv([lambda: gym.wrappers.TimeLimit(DummyDictEnv(), 50)]), norm_obs_keys=["vec"])
    model = TRPOCritic(
        "MultiInputPolicy", env, gamma=0.5, seed=1, n_steps=128, batch_size=64, policy_kwargs=dict(net_arch=[32])
    )
    model.learn(total_timesteps=256)
    evaluate_policy(model, env, n_eval_episodes=2, warn=False)


# --- sb3-contrib tests/test_save_load.py ---------------------------------------------------------


def rand_like(tensor: th.Tensor) -> th.Tensor:
    if th.is_floating_point(tensor):
        return th.rand_like(tensor)
    return th.randint_like(tensor, high=10)


SAVE_LOAD_KWARGS: dict[str, Any] = dict(n_steps=128, batch_size=64, policy_kwargs=dict(net_arch=[16]))


def test_save_load(tmp_path):
    """save/load, and get_parameters/set_parameters, as for any SB3 algorithm."""
    env = DummyVecEnv([lambda: IdentityEnvBox(-10, 10)])
    model = TRPOCritic("MlpPolicy", env, verbose=1, **SAVE_LOAD_KWARGS)
    model.learn(total_timesteps=300)

    env.reset()
    observations = np.concatenate([env.step(np.array([env.action_space.sample()]))[0] for _ in range(10)], axis=0)

    original_params: dict[str, Any] = deepcopy(model.get_parameters())
    assert set(original_params) == {"policy", "policy.optimizer"}

    # invalid object names throw errors
    invalid_object_params = deepcopy(original_params)
    invalid_object_params["I_should_not_be_a_valid_object"] = "and_I_am_an_invalid_tensor"
    with pytest.raises(ValueError):
        model.set_parameters(invalid_object_params, exact_match=True)
    with pytest.raises(ValueError):
        model.set_parameters(invalid_object_params, exact_match=False)

    # exact_match catches when something was missed
    missing_object_params = dict(list(original_params.items())[:-1])
    with pytest.raises(ValueError):
        model.set_parameters(missing_object_params, exact_match=True)

    # exact_match catches a missing tensor inside a state dict
    missing_state_dict_tensor_params: dict[str, Any] = {
        object_name: dict(list(original_params[object_name].items())[:-1]) for object_name in original_params
    }
    with pytest.raises(RuntimeError):
        model.set_parameters(missing_state_dict_tensor_params, exact_match=True)

    # the parameters do change
    random_params: dict[str, Any] = {}
    for object_name, params in original_params.items():
        if "optim" in object_name:
            random_params[object_name] = params
        else:
            random_params[object_name] = OrderedDict(
                (param_name, rand_like(param)) for param_name, param in list(params.items())[:-1]
            )
    model.set_parameters(random_params, exact_match=False)

    new_params = model.get_parameters()
    for object_name in original_params:
        if "optim" in object_name:
            continue
        last_key = list(original_params[object_name].keys())[-1]
        for k in original_params[object_name]:
            if k == last_key:
                assert th.allclose(original_params[object_name][k], new_params[object_name][k]), "changed but not loaded"
            else:
                assert not th.allclose(original_params[object_name][k], new_params[object_name][k]), "did not change"

    params = new_params
    selected_actions, _ = model.predict(observations, deterministic=True)

    model.save(tmp_path / "test_save.zip")
    del model

    # the model loads as expected for every possible choice of device
    for device in ["auto", "cpu", "cuda"]:
        model = TRPOCritic.load(str(tmp_path / "test_save.zip"), env=env, device=device)
        assert model.device.type == get_device(device).type
        assert model.policy.device.type == get_device(device).type

        new_params = model.get_parameters()
        for object_name in new_params:
            if "optim" in object_name:
                continue
            for key in params[object_name]:
                assert new_params[object_name][key].device.type == get_device(device).type
                assert th.allclose(params[object_name][key].to("cpu"), new_params[object_name][key].to("cpu")), (
                    "Model parameters not the same after save and load."
                )

        new_selected_actions, _ = model.predict(observations, deterministic=True)
        assert np.allclose(selected_actions, new_selected_actions, 1e-4)

        model.learn(total_timesteps=300)
        del model

    os.remove(tmp_path / "test_save.zip")


def test_set_env():
    env = DummyVecEnv([lambda: IdentityEnvBox(-10, 10)])
    env2 = DummyVecEnv([lambda: IdentityEnvBox(-10, 10)])
    env3 = IdentityEnvBox(-10, 10)

    model = TRPOCritic("MlpPolicy", env, **SAVE_LOAD_KWARGS)
    model.learn(total_timesteps=150)
    model.set_env(env2)
    model.learn(total_timesteps=150)
    # change env test wrapping
    model.set_env(env3)
    assert isinstance(model.get_env(), DummyVecEnv)
    model.learn(total_timesteps=150)


def test_exclude_include_saved_params(tmp_path):
    env = DummyVecEnv([lambda: IdentityEnvBox(-10, 10)])
    # verbose=2 is not the default
    model = TRPOCritic("MlpPolicy", env, policy_kwargs=dict(net_arch=[16]), verbose=2)

    model.save(tmp_path / "test_save", exclude=["verbose"])
    del model
    model = TRPOCritic.load(str(tmp_path / "test_save.zip"))
    assert model.verbose != 2

    model.verbose = 2
    model.save(tmp_path / "test_save", exclude=["verbose"], include=["verbose"])
    del model
    model = TRPOCritic.load(str(tmp_path / "test_save.zip"))
    assert model.verbose == 2

    os.remove(tmp_path / "test_save.zip")


@pytest.mark.parametrize("policy_str", ["MlpPolicy", "CnnPolicy"])
def test_save_load_policy(tmp_path, policy_str):
    """Saving and loading the policy only."""
    if policy_str == "MlpPolicy":
        kwargs: dict[str, Any] = dict(n_steps=128, batch_size=64, policy_kwargs=dict(net_arch=[16]))
        single_env: gym.Env = IdentityEnvBox(-10, 10)
    else:
        kwargs = dict(n_steps=128, batch_size=64, policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=32)))
        single_env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=2, discrete=False)
    env = DummyVecEnv([lambda: single_env])

    model = TRPOCritic(policy_str, env, verbose=1, **kwargs)
    model.learn(total_timesteps=300)

    env.reset()
    observations = np.concatenate([env.step(np.array([env.action_space.sample()]))[0] for _ in range(10)], axis=0)

    policy = model.policy
    policy_class = policy.__class__
    params = deepcopy(policy.state_dict())
    random_params = {param_name: rand_like(param) for param_name, param in params.items()}
    policy.load_state_dict(random_params)
    new_params = policy.state_dict()
    for k in params:
        assert not th.allclose(params[k], new_params[k]), "Parameters did not change as expected."
    params = new_params

    selected_actions, _ = policy.predict(observations, deterministic=True)
    policy.save(tmp_path / "policy.pkl")
    device = policy.device
    del policy

    policy = policy_class.load(tmp_path / "policy.pkl").to(device)
    assert type(policy) is policy_class and policy.share_features_extractor is False
    new_params = policy.state_dict()
    for key in params:
        assert th.allclose(params[key], new_params[key]), "Policy parameters not the same after save and load."
    new_selected_actions, _ = policy.predict(observations, deterministic=True)
    assert np.allclose(selected_actions, new_selected_actions, 1e-4)

    os.remove(tmp_path / "policy.pkl")


# --- sb3-contrib tests/test_deterministic.py (which covers the other algorithms) -------------------


def test_deterministic_training():
    results: list[list[np.ndarray]] = [[], []]
    rewards: list[list[np.ndarray]] = [[], []]
    for i in range(2):
        model = TRPOCritic("MlpPolicy", "Pendulum-v1", seed=0, n_steps=128, policy_kwargs=dict(net_arch=[16]))
        model.learn(total_timesteps=256)
        env = model.get_env()
        assert env is not None
        obs = env.reset()
        for _ in range(100):
            assert isinstance(obs, np.ndarray)
            action, _ = model.predict(obs, deterministic=False)
            obs, reward, _, _ = env.step(action)
            results[i].append(action)
            rewards[i].append(reward)
    np.testing.assert_array_equal(np.array(results[0]), np.array(results[1]))
    np.testing.assert_array_equal(np.array(rewards[0]), np.array(rewards[1]))
