"""Observation normalization inside the policy (``normalize_observations``)."""

import warnings
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic
from sb3_trpo_critic.normalization import NormalizedFlattenExtractor, ObservationNormalizer, normalizers
from sb3_trpo_critic.trpo_critic import HyperparameterError
from tests.envs import BoxTargetEnv, CueRecallEnv

SMALL: dict[str, Any] = dict(n_steps=64, batch_size=32, n_critic_updates=1, seed=0)


def test_normalizer_matches_vec_normalize_statistics():
    """The same running mean and variance as SB3's RunningMeanStd (VecNormalize's), and its formula."""
    rng = np.random.default_rng(0)
    normalizer, reference = ObservationNormalizer(3), RunningMeanStd(shape=(3,))
    for scale in (1.0, 5.0, 0.1):
        batch = rng.normal(2.0, scale, size=(50, 3))
        normalizer.update(th.as_tensor(batch, dtype=th.float32))
        reference.update(batch)
    np.testing.assert_allclose(normalizer.mean.numpy(), reference.mean, rtol=1e-5)
    np.testing.assert_allclose(normalizer.var.numpy(), reference.var, rtol=1e-5)
    assert float(normalizer.count) == pytest.approx(reference.count)
    obs = rng.normal(2.0, 3.0, size=(4, 3)).astype(np.float32)
    expected = np.clip((obs - reference.mean) / np.sqrt(reference.var + 1e-8), -10, 10)
    np.testing.assert_allclose(normalizer(th.as_tensor(obs)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_default_normalizes_box_observations_and_updates_after_each_update(tmp_path):
    model = TRPOCritic("MlpPolicy", BoxTargetEnv(dim=3), **SMALL)
    assert model.normalize_observations is None
    assert isinstance(model.policy.pi_features_extractor, NormalizedFlattenExtractor)
    assert isinstance(model.policy.vf_features_extractor, NormalizedFlattenExtractor)
    actor_normalizer, critic_normalizer = normalizers(model.policy)
    # buffers, not parameters: the trust region and the critic's optimizer never see them
    assert not {id(t) for t in (actor_normalizer.mean, actor_normalizer.var)} & {id(p) for p in model.policy.parameters()}

    # The first rollout is collected and used by its update with the initial statistics (mean 0, variance 1) ...
    counts_at_rollout_end = []

    class RecordFirstRollout(BaseCallback):
        def _on_rollout_end(self) -> None:
            counts_at_rollout_end.append(float(actor_normalizer.count))

        def _on_step(self) -> bool:
            return True

    model.learn(64, callback=RecordFirstRollout())
    assert counts_at_rollout_end == [pytest.approx(1e-4)]
    # ... and merged at the end of that update, so that the next rollout and a saved model have it.
    rollout = np.asarray(model.rollout_buffer.observations).reshape(-1, 3)
    for normalizer in (actor_normalizer, critic_normalizer):
        assert float(normalizer.count) == pytest.approx(64 + 1e-4)
        np.testing.assert_allclose(normalizer.mean.numpy(), rollout.mean(axis=0), rtol=1e-4, atol=1e-6)
    model.learn(64, reset_num_timesteps=False)
    assert float(actor_normalizer.count) == pytest.approx(128 + 1e-4)

    # saved and loaded with the model: predict on raw observations gives the same actions
    model.save(tmp_path / "model")
    loaded = TRPOCritic.load(tmp_path / "model")
    for saved, restored in zip(normalizers(model.policy), normalizers(loaded.policy), strict=True):
        assert th.equal(saved.mean, restored.mean) and th.equal(saved.var, restored.var)
    obs = np.random.default_rng(1).uniform(-1, 1, size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_normalization_changes_the_policy_input():
    model = TRPOCritic("MlpPolicy", BoxTargetEnv(dim=3), **SMALL)
    (normalizer, _) = normalizers(model.policy)
    normalizer.mean.fill_(0.5)
    normalizer.var.fill_(4.0)
    obs = th.tensor([[1.5, 0.5, -0.5]])
    features = model.policy.pi_features_extractor(obs)
    np.testing.assert_allclose(features.numpy(), [[0.5, 0.0, -0.5]], atol=1e-6)


def test_off_under_vec_normalize_and_when_asked():
    vec_normalize = VecNormalize(make_vec_env(lambda: BoxTargetEnv(dim=3)))
    assert normalizers(TRPOCritic("MlpPolicy", vec_normalize, **SMALL).policy) == []
    only_rewards = VecNormalize(make_vec_env(lambda: BoxTargetEnv(dim=3)), norm_obs=False)
    assert len(normalizers(TRPOCritic("MlpPolicy", only_rewards, **SMALL).policy)) == 2
    model = TRPOCritic("MlpPolicy", BoxTargetEnv(dim=3), normalize_observations=False, **SMALL)
    assert type(model.policy.pi_features_extractor) is FlattenExtractor and normalizers(model.policy) == []
    with pytest.warns(UserWarning, match="normalized twice"):
        TRPOCritic("MlpPolicy", vec_normalize, normalize_observations=True, **SMALL)


def test_a_normalizing_policy_meeting_vec_normalize_later_warns(tmp_path):
    """set_env or load onto a VecNormalize(norm_obs=True) env: said, not done silently."""
    model = TRPOCritic("MlpPolicy", make_vec_env(lambda: BoxTargetEnv(dim=3)), **SMALL)
    vec_normalize = VecNormalize(make_vec_env(lambda: BoxTargetEnv(dim=3)))
    with pytest.warns(UserWarning, match="normalized twice"):
        model.set_env(vec_normalize)
    model.save(tmp_path / "model")
    with pytest.warns(UserWarning, match="normalized twice"):
        TRPOCritic.load(tmp_path / "model", env=vec_normalize)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        TRPOCritic.load(tmp_path / "model", env=make_vec_env(lambda: BoxTargetEnv(dim=3)))
        plain = TRPOCritic("MlpPolicy", vec_normalize, **SMALL)  # the default: off under VecNormalize
        plain.set_env(vec_normalize)


def test_not_for_other_observation_spaces_nor_own_extractors():
    from tests.test_defaults import ActionSpaceEnv

    class DiscreteObservations(ActionSpaceEnv):
        def __init__(self):
            super().__init__(spaces.Discrete(2))
            self.observation_space = spaces.Discrete(4)

    assert normalizers(TRPOCritic("MlpPolicy", DiscreteObservations(), **SMALL).policy) == []
    with pytest.raises(HyperparameterError, match="normalize_observations=True needs a Box observation space"):
        TRPOCritic("MlpPolicy", DiscreteObservations(), normalize_observations=True, **SMALL)
    own = dict(features_extractor_class=FlattenExtractor)
    assert normalizers(TRPOCritic("MlpPolicy", BoxTargetEnv(dim=3), policy_kwargs=own, **SMALL).policy) == []
    with pytest.raises(HyperparameterError, match="features_extractor_class"):
        TRPOCritic("MlpPolicy", BoxTargetEnv(dim=3), policy_kwargs=own, normalize_observations=True, **SMALL)


def test_user_policy_kwargs_are_not_mutated():
    policy_kwargs = dict(net_arch=[8])
    TRPOCritic("MlpPolicy", BoxTargetEnv(dim=3), policy_kwargs=policy_kwargs, **SMALL)
    assert policy_kwargs == dict(net_arch=[8])


def test_recurrent_normalizes_too():
    model = RecurrentTRPOCritic(
        "MlpLstmPolicy", CueRecallEnv(), n_steps=32, batch_size=32, n_critic_updates=1, policy_kwargs=dict(lstm_hidden_size=8)
    )
    assert len(normalizers(model.policy)) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.learn(96)
    assert all(float(normalizer.count) == pytest.approx(96 + 1e-4) for normalizer in normalizers(model.policy))
