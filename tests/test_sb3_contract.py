"""TRPOCritic behaves like any SB3 algorithm: learn, save/load, wrappers, policies, callbacks, evaluation."""

import copy
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from sb3_trpo_critic import CnnPolicy, MlpPolicy, MultiInputPolicy, TRPOCritic
from sb3_trpo_critic.trust_region import full_kl
from tests.envs import BoxTargetEnv

SMALL: dict[str, Any] = dict(n_steps=128, batch_size=64, n_critic_updates=2, cg_max_steps=5, seed=0, device="cpu")


def image_env():
    return DummyVecEnv([lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)])


@pytest.mark.parametrize(
    ("alias", "policy_class", "make_env"),
    [
        ("MlpPolicy", MlpPolicy, lambda: "CartPole-v1"),
        ("CnnPolicy", CnnPolicy, image_env),
        ("MultiInputPolicy", MultiInputPolicy, lambda: DummyVecEnv([lambda: SimpleMultiObsEnv(random_start=True)])),
    ],
)
def test_policy_aliases(alias, policy_class, make_env):
    """Each alias builds TRPOCritic's own policy class, whose default is one feature extractor per network."""
    model = TRPOCritic(alias, make_env(), n_steps=64, batch_size=64, seed=0, device="cpu")
    assert type(model.policy) is policy_class
    assert model.policy.share_features_extractor is False
    assert model.policy.pi_features_extractor is not model.policy.vf_features_extractor


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
    assert isinstance(env.obs_rms, RunningMeanStd) and env.obs_rms.count > 1000
    eval_env = VecNormalize(make_vec_env(lambda: BoxTargetEnv(dim=3), n_envs=1, seed=1), training=False)
    eval_env.obs_rms = env.obs_rms
    mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=2)
    assert np.isfinite(mean_reward)


@pytest.mark.slow  # starts the env worker processes
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


def test_shared_cnn_is_accepted_and_belongs_to_the_actor():
    """A CNN shared by the actor and the critic is the actor's: the trust region bounds it, the critic never moves it."""
    model = TRPOCritic(
        "CnnPolicy",
        image_env(),
        policy_kwargs=dict(share_features_extractor=True),
        n_steps=64,
        batch_size=32,
        n_critic_updates=3,
        cg_max_steps=5,
        target_kl=0.01,
        seed=0,
        device="cpu",
    )
    policy = model.policy
    assert policy.share_features_extractor and policy.pi_features_extractor is policy.vf_features_extractor
    shared = list(policy.features_extractor.parameters())
    actor_ids, critic_ids = {id(p) for p in model._actor_params}, {id(p) for p in model._critic_params}
    assert shared and {id(p) for p in shared} <= actor_ids
    assert critic_ids.isdisjoint(id(p) for p in shared)
    assert actor_ids | critic_ids == {id(p) for p in policy.parameters()} and actor_ids.isdisjoint(critic_ids)
    optimized = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    assert optimized == critic_ids

    initial = [p.detach().clone() for p in shared]
    updates = []  # per train(): (KL of the whole update, shared params at the first critic step, after train())
    original_train, original_step = model.train, policy.optimizer.step

    def train():
        buffer = model.rollout_buffer
        shape = model.observation_space.shape
        assert shape is not None
        obs = th.as_tensor(buffer.observations.reshape(-1, *shape), device=model.device)
        with th.no_grad():
            before = copy.copy(policy.get_distribution(obs))
        at_first_critic_step: list[list[th.Tensor]] = []

        def step(*args, **kwargs):
            if not at_first_critic_step:  # the policy step is over, the critic epochs begin
                at_first_critic_step.append([p.detach().clone() for p in shared])
            return original_step(*args, **kwargs)

        policy.optimizer.step = step  # type: ignore[method-assign]
        try:
            original_train()
        finally:
            del policy.optimizer.step
        with th.no_grad():
            kl = float(full_kl(before, copy.copy(policy.get_distribution(obs))).mean())
        assert at_first_critic_step, "the critic optimizer never stepped"
        updates.append((kl, at_first_critic_step[0], [p.detach().clone() for p in shared]))

    model.train = train  # type: ignore[method-assign]
    model.learn(256)
    assert len(updates) == 4
    for kl, at_first_critic_step, after in updates:
        # the critic epochs left the shared CNN bit-identical
        assert all(th.equal(a, b) for a, b in zip(at_first_critic_step, after, strict=True))
        # the whole train() stayed in the trust region, measured on the rollout's states
        assert kl <= model._current_target_kl() * (1 + 1e-5)
    # the trust-region steps did move the shared CNN
    assert model.rejected_steps.get("line_search_failed", 0) < 4
    assert not all(th.equal(a, b) for a, b in zip(initial, shared, strict=True))


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
    assert "train/std" in model.logger.name_to_value  # (a defaultdict: a missing key would read 0.0)
    std = model.logger.name_to_value["train/std"]
    assert np.isfinite(std) and std > 0
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
    rewards, lengths = evaluate_policy(
        model, make_vec_env("CartPole-v1", n_envs=1, seed=7), n_eval_episodes=3, return_episode_rewards=True
    )
    mean_reward, std_reward = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=7), n_eval_episodes=3)

    # The same three episodes played by hand, with the mode of the policy's action distribution.
    env = make_vec_env("CartPole-v1", n_envs=1, seed=7)
    obs = env.reset()
    returns: list[float] = []
    steps: list[int] = []
    episode_return, episode_length = 0.0, 0
    while len(returns) < 3:
        with th.no_grad():
            action = model.policy.get_distribution(th.as_tensor(obs)).get_actions(deterministic=True)
        obs, reward, done, _ = env.step(action.numpy())
        episode_return, episode_length = episode_return + float(reward[0]), episode_length + 1
        if done[0]:
            returns.append(episode_return)
            steps.append(episode_length)
            episode_return, episode_length = 0.0, 0
    assert rewards == pytest.approx(returns) and lengths == steps
    assert mean_reward == pytest.approx(np.mean(returns)) and std_reward == pytest.approx(np.std(returns))
    assert rewards == pytest.approx(lengths)  # CartPole: +1 per step


def on_device(tensor: th.Tensor, device: th.device) -> bool:
    """``tensor`` lives on ``device`` (``th.device("cuda")`` stands for the current CUDA device)."""
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA"))]
)
@pytest.mark.filterwarnings("ignore:You are trying to run TRPOCritic on the GPU")
def test_every_tensor_on_the_model_device(device):
    # "cpu" is honoured where CUDA exists too: SB3's "auto" would pick CUDA there
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", **{**SMALL, "device": device})
    assert model.device.type == device
    assert all(on_device(p, model.device) for p in model.policy.parameters())
    model.learn(256)
    assert all(on_device(t, model.device) for t in model.policy.state_dict().values())
    assert {id(p) for p in model._actor_params} | {id(p) for p in model._critic_params} == {
        id(p) for p in model.policy.parameters()
    }
    # the critic optimizer has state for every critic parameter, on the model's device
    state = model.policy.optimizer.state
    assert {id(p) for p in state} == {id(p) for p in model._critic_params}
    for param in model._critic_params:
        tensors = [v for v in state[param].values() if isinstance(v, th.Tensor)]
        assert tensors and all(on_device(t, model.device) for t in tensors)
    # the rollout buffer hands train() tensors on the model's device
    assert model.rollout_buffer.device == model.device
    samples = next(model.rollout_buffer.get(batch_size=None))
    assert samples.observations.shape == (128, 3)
    for name, tensor in samples._asdict().items():
        assert on_device(tensor, model.device), name
    # and so is the action distribution computed from them
    distribution = model.policy.get_distribution(samples.observations).distribution
    assert isinstance(distribution, th.distributions.Normal)
    assert on_device(distribution.loc, model.device) and on_device(distribution.scale, model.device)


def test_learning_rate_schedule_drives_the_critic_optimizer():
    model = TRPOCritic("MlpPolicy", "CartPole-v1", learning_rate=lambda progress: 1e-3 * (0.5 + 0.5 * progress), **SMALL)
    model.learn(512)
    # the last update runs at progress_remaining = 0
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
