"""TRPOCritic behaves like any SB3 algorithm: learn, save/load, wrappers, policies, callbacks, evaluation."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from sb3_trpo_critic import CnnPolicy, MlpPolicy, MultiInputPolicy, TRPOCritic
from tests.envs import BoxTargetEnv

SMALL = dict(n_steps=128, batch_size=64, n_critic_updates=2, cg_max_steps=5, seed=0, device="cpu")


def test_policy_aliases():
    assert TRPOCritic.policy_aliases == {"MlpPolicy": MlpPolicy, "CnnPolicy": CnnPolicy, "MultiInputPolicy": MultiInputPolicy}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_learn_save_load_round_trip(env_id, tmp_path):
    model = TRPOCritic("MlpPolicy", env_id, **SMALL).learn(512)
    assert model.num_timesteps == 512
    obs = np.stack([model.observation_space.sample() for _ in range(20)])
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")

    loaded = TRPOCritic.load(tmp_path / "model", env=make_vec_env(env_id, n_envs=1, seed=1), device="cpu")
    loaded_actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, loaded_actions)
    for name, tensor in model.policy.state_dict().items():
        assert th.equal(tensor, loaded.policy.state_dict()[name]), name
    # the hyperparameters, the critic optimizer's state and the actor/critic split survive the round trip
    assert loaded.target_kl == model.target_kl and loaded.cg_max_steps == 5
    assert loaded.policy.optimizer.state_dict()["state"].keys() == model.policy.optimizer.state_dict()["state"].keys()
    assert [p.shape for p in loaded._actor_params] == [p.shape for p in model._actor_params]
    # and it keeps learning
    loaded.learn(256, reset_num_timesteps=False)
    assert loaded.num_timesteps == 768


def test_vecnormalize():
    env = VecNormalize(make_vec_env(lambda: BoxTargetEnv(dim=3), n_envs=2, seed=0))
    model = TRPOCritic("MlpPolicy", env, **SMALL).learn(1024)
    assert env.obs_rms.count > 1000
    eval_env = VecNormalize(make_vec_env(lambda: BoxTargetEnv(dim=3), n_envs=1, seed=1), training=False)
    eval_env.obs_rms = env.obs_rms
    mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=2)
    assert np.isfinite(mean_reward)


def test_subproc_vec_env():
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = TRPOCritic("MlpPolicy", env, **SMALL).learn(512)
        assert model.num_timesteps == 512
    finally:
        env.close()


def test_cnn_policy_has_one_cnn_per_network():
    env = DummyVecEnv([lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)])
    model = TRPOCritic("CnnPolicy", env, n_steps=64, batch_size=32, n_critic_updates=1, cg_max_steps=3, seed=0, device="cpu")
    policy = model.policy
    assert policy.pi_features_extractor is not policy.vf_features_extractor
    actor_ids = {id(p) for p in model._actor_params}
    assert {id(p) for p in policy.pi_features_extractor.parameters()} <= actor_ids
    assert {id(p) for p in policy.vf_features_extractor.parameters()}.isdisjoint(actor_ids)
    model.learn(128)
    assert model.num_timesteps == 128


def test_shared_cnn_is_refused():
    env = DummyVecEnv([lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)])
    with pytest.raises(ValueError, match="share no trainable parameter"):
        TRPOCritic("CnnPolicy", env, policy_kwargs=dict(share_features_extractor=True), device="cpu")


def test_multi_input_policy_on_dict_observations():
    env = DummyVecEnv([lambda: SimpleMultiObsEnv(random_start=True)])
    model = TRPOCritic("MultiInputPolicy", env, **SMALL)
    assert model.policy.pi_features_extractor is not model.policy.vf_features_extractor
    model.learn(256)
    assert model.num_timesteps == 256


def test_gsde():
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", use_sde=True, sde_sample_freq=4, **SMALL)
    assert model.policy.use_sde
    model.learn(512)
    assert np.isfinite(model.logger.name_to_value.get("train/std", 1.0))
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_callbacks(tmp_path):
    class CountAndStop(BaseCallback):
        def __init__(self):
            super().__init__()
            self.steps = 0
            self.rollouts = 0

        def _on_rollout_end(self):
            self.rollouts += 1

        def _on_step(self):
            self.steps += 1
            return self.num_timesteps < 300  # stop during the third rollout

    counter = CountAndStop()
    eval_callback = EvalCallback(
        make_vec_env("CartPole-v1", n_envs=1, seed=3), eval_freq=128, n_eval_episodes=2, log_path=str(tmp_path)
    )
    checkpoint = CheckpointCallback(save_freq=128, save_path=str(tmp_path / "ckpt"), name_prefix="trpo")
    model = TRPOCritic("MlpPolicy", "CartPole-v1", **SMALL)
    model.learn(10_000, callback=[counter, eval_callback, checkpoint])
    assert counter.steps == 300 and model.num_timesteps == 300
    assert (tmp_path / "evaluations.npz").exists()
    assert len(list((tmp_path / "ckpt").glob("trpo_*_steps.zip"))) == 2
    TRPOCritic.load(next((tmp_path / "ckpt").glob("trpo_*_steps.zip")))


def test_evaluate_policy_and_progress_bar():
    model = TRPOCritic("MlpPolicy", "CartPole-v1", **SMALL).learn(256, progress_bar=True)
    mean_reward, std_reward = evaluate_policy(model, model.get_env(), n_eval_episodes=3, deterministic=True)
    assert mean_reward >= 1.0 and std_reward >= 0.0


def test_every_tensor_on_the_model_device():
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", **SMALL)
    assert model.device == th.device("cpu")
    assert all(p.device == model.device for p in model.policy.parameters())
    model.learn(256)


def test_learning_rate_schedule_drives_the_critic_optimizer():
    model = TRPOCritic("MlpPolicy", "CartPole-v1", learning_rate=lambda progress: 1e-3 * (0.5 + 0.5 * progress), **SMALL)
    model.learn(512)
    # the last update runs at progress_remaining = 0
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
