"""The constructor defaults that follow the action space: ``target_kl=None`` (0.01 per action dimension),
``cg_damping=None`` (0.1 per action dimension) and the initial standard deviation (total variance 1)."""

import csv
import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic
from sb3_trpo_critic.trpo_critic import (
    CG_DAMPING_PER_DIMENSION,
    TARGET_KL_PER_DIMENSION,
    HyperparameterError,
    default_log_std_init,
)


class ActionSpaceEnv(gym.Env):
    """Observations in Box(3); any action space; reward 1 per step, episodes of 20 steps."""

    def __init__(self, action_space: spaces.Space):
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
        self.action_space = action_space
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        return self.observation_space.sample(), 1.0, False, self._t >= 20, {}


#: (action space, the default radius: 0.01 times the number of dimensions sb3_contrib.TRPO averages its KL over)
RADII = [
    (spaces.Box(-1.0, 1.0, (6,), dtype=np.float32), 0.06),
    (spaces.Box(-1.0, 1.0, (1,), dtype=np.float32), 0.01),
    (spaces.Box(-1.0, 1.0, (2, 3), dtype=np.float32), 0.06),
    (spaces.Discrete(4), 0.01),
    (spaces.MultiDiscrete([3, 4, 2]), 0.01),
    (spaces.MultiBinary(5), 0.05),
]


def _logged(model: TRPOCritic, folder) -> dict[str, list[float]]:
    """The logged ``train/target_kl`` and ``train/cg_damping`` of three rollouts' training, by key."""
    model.set_logger(configure(str(folder), ["csv"]))
    model.learn(3 * model.n_steps)  # SB3 dumps an update's values at the next rollout: 2 of the 3 are logged
    with open(folder / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    return {key: [float(row[key]) for row in rows if row[key]] for key in ("train/target_kl", "train/cg_damping")}


@pytest.mark.parametrize(("action_space", "radius"), RADII, ids=lambda x: str(x))
def test_default_radius_and_damping_per_action_dimension(action_space, radius, tmp_path):
    damping = 10 * radius  # 0.1 per dimension where the radius is 0.01 per dimension
    model = TRPOCritic("MlpPolicy", ActionSpaceEnv(action_space), n_steps=64, batch_size=32, n_critic_updates=1, seed=0)
    assert model.target_kl is None and model.cg_damping is None
    assert model._current_target_kl() == pytest.approx(radius)
    assert model._current_cg_damping() == pytest.approx(damping)
    logged = _logged(model, tmp_path / "log")
    assert logged["train/target_kl"] == pytest.approx([radius, radius])
    assert logged["train/cg_damping"] == pytest.approx([damping, damping])

    # Saved as None, so the loaded model's radius and damping follow its own action space.
    model.save(tmp_path / "model")
    loaded = TRPOCritic.load(tmp_path / "model", env=ActionSpaceEnv(action_space))
    assert loaded.target_kl is None and loaded.cg_damping is None
    assert loaded._current_target_kl() == pytest.approx(radius)
    assert loaded._current_cg_damping() == pytest.approx(damping)
    logged = _logged(loaded, tmp_path / "log_loaded")
    assert logged["train/target_kl"] == pytest.approx([radius, radius])
    assert logged["train/cg_damping"] == pytest.approx([damping, damping])


def test_default_damping_is_used_by_the_fisher_product():
    """The product the step solves with is (F + 0.1 d I) v: F v from cg_damping=0 plus 0.1 d v."""
    env = ActionSpaceEnv(spaces.Box(-1.0, 1.0, (6,), dtype=np.float32))
    model = TRPOCritic("MlpPolicy", env, n_steps=64, seed=0)
    model.learn(64)
    rollout = next(model.rollout_buffer.get(batch_size=None))
    vector = th.randn(sum(p.numel() for p in model._actor_params), generator=th.Generator().manual_seed(0))
    damped = model._fisher_vector_product(model._action_distribution(rollout), None)(vector)
    model.cg_damping = 0.0
    undamped = model._fisher_vector_product(model._action_distribution(rollout), None)(vector)
    th.testing.assert_close(damped, undamped + 0.6 * vector)


#: (action space, the initial log standard deviation when policy_kwargs does not set one: 0.5 log(1 / d))
LOG_STD_INITS = [
    (spaces.Box(-1.0, 1.0, (1,), dtype=np.float32), 0.0),
    (spaces.Box(-1.0, 1.0, (6,), dtype=np.float32), 0.5 * math.log(1 / 6)),
    (spaces.Box(-1.0, 1.0, (2, 4), dtype=np.float32), 0.5 * math.log(1 / 8)),
]


@pytest.mark.parametrize(("action_space", "log_std"), LOG_STD_INITS, ids=lambda x: str(x))
def test_default_initial_std_shares_a_unit_variance_over_the_action_dimensions(action_space, log_std, tmp_path):
    model = TRPOCritic("MlpPolicy", ActionSpaceEnv(action_space), n_steps=64, seed=0)
    assert default_log_std_init(action_space) == pytest.approx(log_std)
    assert model.policy_kwargs["log_std_init"] == pytest.approx(log_std)
    th.testing.assert_close(model.policy.log_std.detach(), th.full((math.prod(action_space.shape),), log_std))
    assert float((model.policy.log_std.detach().exp() ** 2).sum()) == pytest.approx(1.0)  # the total variance
    model.save(tmp_path / "model")
    loaded = TRPOCritic.load(tmp_path / "model")
    th.testing.assert_close(loaded.policy.log_std, model.policy.log_std)
    assert loaded.policy_kwargs["log_std_init"] == pytest.approx(log_std)


@pytest.mark.parametrize("action_space", [spaces.Discrete(4), spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(5)], ids=str)
def test_no_initial_std_without_a_gaussian(action_space):
    assert default_log_std_init(action_space) is None
    assert "log_std_init" not in TRPOCritic("MlpPolicy", ActionSpaceEnv(action_space), n_steps=64).policy_kwargs


def test_explicit_initial_std_and_gsde_keep_sb3s_meaning():
    env = ActionSpaceEnv(spaces.Box(-1.0, 1.0, (6,), dtype=np.float32))
    model = TRPOCritic("MlpPolicy", env, n_steps=64, policy_kwargs=dict(log_std_init=-1.0))
    assert model.policy_kwargs["log_std_init"] == -1.0
    th.testing.assert_close(model.policy.log_std.detach(), th.full((6,), -1.0))
    # gSDE's log_std_init parametrizes another noise (a matrix over the features): SB3's default stays
    assert "log_std_init" not in TRPOCritic("MlpPolicy", env, n_steps=64, use_sde=True).policy_kwargs


def test_default_is_sb3_contrib_damping():
    assert CG_DAMPING_PER_DIMENSION == 0.1  # sb3_contrib.TRPO's default cg_damping, per dimension
    assert TRPOCritic("MlpPolicy", "Pendulum-v1")._current_cg_damping() == pytest.approx(0.1)


@pytest.mark.parametrize("cg_damping", [0.0, 0.1, 0.3])
def test_explicit_cg_damping_is_never_rescaled(cg_damping, tmp_path):
    env = ActionSpaceEnv(spaces.Box(-1.0, 1.0, (6,), dtype=np.float32))
    model = TRPOCritic("MlpPolicy", env, n_steps=64, batch_size=32, n_critic_updates=1, cg_damping=cg_damping, seed=0)
    assert model._current_cg_damping() == cg_damping
    assert _logged(model, tmp_path / "log")["train/cg_damping"] == pytest.approx([cg_damping, cg_damping])
    model.save(tmp_path / "model")
    assert TRPOCritic.load(tmp_path / "model")._current_cg_damping() == cg_damping


def test_default_is_sb3_contrib_trust_region():
    assert TARGET_KL_PER_DIMENSION == 0.01  # sb3_contrib.TRPO's default target_kl, per dimension
    model = TRPOCritic("MlpPolicy", "Pendulum-v1")
    assert model._current_target_kl() == pytest.approx(0.01)


@pytest.mark.parametrize("target_kl", [0.01, 0.3])
def test_explicit_target_kl_is_never_rescaled(target_kl, tmp_path):
    env = ActionSpaceEnv(spaces.Box(-1.0, 1.0, (6,), dtype=np.float32))
    model = TRPOCritic("MlpPolicy", env, n_steps=64, batch_size=32, n_critic_updates=1, target_kl=target_kl, seed=0)
    assert model._current_target_kl() == target_kl
    assert _logged(model, tmp_path / "log")["train/target_kl"] == pytest.approx([target_kl, target_kl])
    model.save(tmp_path / "model")
    assert TRPOCritic.load(tmp_path / "model")._current_target_kl() == target_kl


def test_set_env_with_another_action_space_is_refused():
    """SB3 refuses another action space in set_env, so the default radius cannot go stale."""
    model = TRPOCritic("MlpPolicy", ActionSpaceEnv(spaces.Box(-1.0, 1.0, (6,), dtype=np.float32)), n_steps=64)
    with pytest.raises(ValueError, match="Action spaces do not match"):
        model.set_env(DummyVecEnv([lambda: ActionSpaceEnv(spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))]))
    assert model._current_target_kl() == pytest.approx(0.06)
    assert model._current_cg_damping() == pytest.approx(0.6)


def test_recurrent_has_the_same_defaults():
    env = ActionSpaceEnv(spaces.Box(-1.0, 1.0, (4,), dtype=np.float32))
    model = RecurrentTRPOCritic("MlpLstmPolicy", env, n_steps=32, policy_kwargs=dict(lstm_hidden_size=8))
    assert model.target_kl is None and model.cg_damping is None
    assert model._current_target_kl() == pytest.approx(0.04)
    assert model._current_cg_damping() == pytest.approx(0.4)
    th.testing.assert_close(model.policy.log_std.detach(), th.full((4,), 0.5 * math.log(1 / 4)))


@pytest.mark.parametrize("target_kl", [0.0, -0.01, float("nan")])
def test_invalid_target_kl_still_refused(target_kl):
    with pytest.raises(HyperparameterError, match=r"target_kl must be None \(0.01 per action dimension\)"):
        TRPOCritic("MlpPolicy", "Pendulum-v1", target_kl=target_kl)


def test_zoo_default_entry_follows_the_constructor():
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters

    zoo = load_zoo_hyperparameters("trpo_critic", "Pusher-v5")
    assert zoo.entry == "default"
    assert not {"target_kl", "cg_damping", "policy_kwargs"} & set(zoo.model_kwargs)


def test_runner_defaults_spec_builds_the_constructor_defaults():
    from sb3_trpo_critic.benchmarks.compare import build_parser, build_specs
    from sb3_trpo_critic.benchmarks.run import RunSpec, run_one
    from sb3_trpo_critic.zoo.hyperparameters import constructor_defaults

    zoo = constructor_defaults("trpo", "Pendulum-v1")
    assert (zoo.entry, zoo.rule, zoo.policy, zoo.n_envs, zoo.normalize) == ("", "constructor-defaults", "MlpPolicy", 1, False)
    assert zoo.model_kwargs == {}
    assert constructor_defaults("trpo_critic", "Pendulum-v1", {"target_kl": 0.02}).model_kwargs == {"target_kl": 0.02}

    args = build_parser().parse_args(
        ["run", "--defaults", "--algos", "trpo_critic", "--envs", "CartPole-v1", "--seeds", "1", "--out", "unused"]
    )
    args.hyperparams, args.threads = tuple(args.hyperparams), 1
    (spec,) = build_specs(args)
    assert spec.defaults and spec.name == "trpo_critic__CartPole-v1__seed0__defaults"
    assert RunSpec("trpo_critic", "CartPole-v1", 0).name == "trpo_critic__CartPole-v1__seed0"

    result = run_one(RunSpec("trpo_critic", "CartPole-v1", 0, timesteps=256, eval_points=1, eval_episodes=1, defaults=True))
    assert (result.zoo_entry, result.zoo_rule) == ("", "constructor-defaults")
    assert result.hyperparameters == {"policy": "MlpPolicy", "n_envs": 1, "normalize": False}
    assert result.environment is not None and result.environment.vec_env == ("DummyVecEnv",)
    assert result.timesteps == 2048  # one rollout of the default n_steps
