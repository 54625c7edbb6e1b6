"""RecurrentTRPOCritic: the sequence-case math against explicit formulas, and its SB3/sb3_contrib contract."""

from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RecurrentRolloutBufferSamples, RNNStates
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_trpo_critic import HyperparameterError, RecurrentTRPOCritic, TRPOCritic
from sb3_trpo_critic.recurrent import reset_at_sequence_starts
from sb3_trpo_critic.trust_region import (
    distribution_outputs,
    flat_concat,
    full_kl,
    make_fisher_vector_product,
    masked_mean,
)
from tests.envs import BoxTargetEnv, CueRecallEnv
from tests.training import RecordingLogger, collect_rollout

TINY = dict(lstm_hidden_size=3, net_arch=dict(pi=[4], vf=[4]))


@pytest.fixture
def float64_observations(monkeypatch):
    """SB3 casts Box observations to float32 before the network; keep float64 for the float64 math tests."""
    monkeypatch.setattr("stable_baselines3.common.policies.preprocess_obs", lambda obs, space, normalize_images=True: obs)


def tiny_model(env=None, **kwargs) -> RecurrentTRPOCritic:
    env = env or make_vec_env(lambda: BoxTargetEnv(dim=2, ep_length=5), n_envs=2, seed=0)
    kwargs = {"n_steps": 16, "batch_size": 16, "seed": 0, "device": "cpu", "policy_kwargs": TINY, **kwargs}
    return RecurrentTRPOCritic("MlpLstmPolicy", env, **kwargs)


def padded_sequences(model: RecurrentTRPOCritic, dtype=th.float64) -> RecurrentRolloutBufferSamples:
    """Three sequences of length 4: a reset in the middle of the second, padding at the end of two."""
    generator = th.Generator().manual_seed(0)
    n_seq, length, hidden = 3, 4, model.policy.lstm_actor.hidden_size

    def randn(*shape):
        return th.randn(*shape, generator=generator, dtype=dtype)

    episode_starts = th.zeros(n_seq * length, dtype=dtype)
    episode_starts[[0, 4, 6, 8]] = 1.0
    mask = th.ones(n_seq * length, dtype=dtype)
    mask[[7, 10, 11]] = 0.0
    states = RNNStates((randn(1, n_seq, hidden), randn(1, n_seq, hidden)), (randn(1, n_seq, hidden), randn(1, n_seq, hidden)))
    return RecurrentRolloutBufferSamples(
        observations=randn(n_seq * length, 2),
        actions=randn(n_seq * length, 2),
        old_values=randn(n_seq * length),
        old_log_prob=randn(n_seq * length),
        advantages=randn(n_seq * length),
        returns=randn(n_seq * length),
        lstm_states=states,
        episode_starts=episode_starts,
        mask=mask,
    )


def explicit_fisher(model: RecurrentTRPOCritic, rollout) -> th.Tensor:
    """F = 1/N sum over the real steps of J_s^T M_s J_s, J_s built row by row, M_s = diag(1/sigma^2, 2/sigma^2)."""
    params = model._actor_params
    distribution = model._action_distribution(rollout)
    mean, std = distribution_outputs(distribution)
    real = th.nonzero(rollout.mask > 0.5).flatten().tolist()
    fisher = th.zeros(sum(p.numel() for p in params), sum(p.numel() for p in params), dtype=th.float64)
    for s in real:
        rows, metric = [], []
        for output, weight in ((mean, 1.0), (std, 2.0)):
            for k in range(output.shape[1]):
                rows.append(
                    flat_concat(
                        th.autograd.grad(output[s, k], params, retain_graph=True, allow_unused=True, materialize_grads=True)
                    )
                )
                metric.append(weight / float(std[s, k].detach()) ** 2)
        jacobian = th.stack(rows)
        fisher += jacobian.T @ th.diag(th.tensor(metric, dtype=th.float64)) @ jacobian
    return fisher / len(real)


def kl_hessian(model: RecurrentTRPOCritic, rollout) -> th.Tensor:
    """The Hessian at theta_old of the line search's masked mean KL, by double differentiation."""
    params = model._actor_params
    with th.no_grad():
        old = model._action_distribution(rollout)
    kl = masked_mean(full_kl(old, model._action_distribution(rollout)), model._state_mask(rollout))
    gradient = flat_concat(th.autograd.grad(kl, params, create_graph=True))
    rows = [
        flat_concat(th.autograd.grad(gradient[i], params, retain_graph=True, allow_unused=True, materialize_grads=True))
        for i in range(gradient.numel())
    ]
    return th.stack(rows)


def fvp_matrix(model: RecurrentTRPOCritic, rollout, damping: float) -> th.Tensor:
    distribution = model._action_distribution(rollout)
    product = make_fisher_vector_product(distribution, model._actor_params, damping, model._state_mask(rollout))
    size = sum(p.numel() for p in model._actor_params)
    return th.stack([product(column) for column in th.eye(size, dtype=th.float64)], dim=1)


def test_fisher_vector_product_through_the_unrolled_lstm_is_the_explicit_fisher_and_the_kl_hessian(float64_observations):
    model = tiny_model()
    model.policy.double()
    rollout = padded_sequences(model)
    fvp = fvp_matrix(model, rollout, damping=0.0)
    fisher = explicit_fisher(model, rollout)
    assert fisher.abs().max() > 1e-3  # not trivially zero
    th.testing.assert_close(fvp, fisher, rtol=1e-9, atol=1e-11)
    th.testing.assert_close(fvp, kl_hessian(model, rollout), rtol=1e-7, atol=1e-9)
    th.testing.assert_close(fvp_matrix(model, rollout, damping=0.3), fisher + 0.3 * th.eye(len(fisher), dtype=th.float64))


def test_padding_never_enters_the_fisher_the_kl_or_the_surrogate(float64_observations):
    model = tiny_model()
    model.policy.double()
    rollout = padded_sequences(model)
    garbage = rollout.observations.clone()
    garbage[rollout.mask < 0.5] = 1e3  # the padded steps' observations: whatever they are, nothing changes
    changed = rollout._replace(observations=garbage, advantages=th.where(rollout.mask > 0.5, rollout.advantages, 1e6))
    th.testing.assert_close(fvp_matrix(model, changed, 0.1), fvp_matrix(model, rollout, 0.1))
    mask = model._state_mask(rollout)
    surrogates = [
        TRPOCritic._surrogate(model._action_distribution(r), r.actions, r.old_log_prob, r.advantages, mask)
        for r in (rollout, changed)
    ]
    th.testing.assert_close(surrogates[0], surrogates[1])
    assert int(mask.sum()) == 9


def test_sub_sampling_unrolls_every_kth_sequence_from_its_own_state():
    model = tiny_model(sub_sampling_factor=2)
    rollout = padded_sequences(model, dtype=th.float32)
    whole = distribution_outputs(model._action_distribution(rollout))[0].reshape(3, 4, 2)
    distribution, mask = model._fisher_distribution(rollout)
    sub = distribution_outputs(distribution)[0].reshape(2, 4, 2)
    th.testing.assert_close(sub, whole[::2])
    assert mask is not None
    assert mask.tolist() == [True] * 4 + [True, True, False, False]


def test_episode_starts_fold_into_the_initial_states_with_the_step_by_step_outputs():
    # Episodes of 5 steps in a rollout of 16: the buffer's sequences start episodes, from non-zero stored states.
    model = tiny_model()
    collect_rollout(model)
    rollout = next(model.rollout_buffer.get())
    assert isinstance(rollout, RecurrentRolloutBufferSamples)  # sb3_contrib's recurrent buffer
    assert len(rollout.lstm_states.pi) == len(rollout.lstm_states.vf) == 2  # (hidden, cell)
    assert rollout.episode_starts.sum() > 0
    _, starts = reset_at_sequence_starts(rollout.lstm_states.pi, rollout.episode_starts)
    assert not starts.any()  # sb3_contrib's one-call LSTM path runs

    def outputs(distribution):
        return [output.detach().clone() for output in distribution_outputs(distribution)]

    stepwise = outputs(model.policy.get_distribution(rollout.observations, rollout.lstm_states.pi, rollout.episode_starts)[0])
    th.testing.assert_close(outputs(model._action_distribution(rollout)), stepwise)
    unreset = outputs(model.policy.get_distribution(rollout.observations, rollout.lstm_states.pi, starts)[0])
    assert not th.allclose(unreset[0], stepwise[0])  # the resets matter: dropping them changes the outputs

    vf_states, starts = reset_at_sequence_starts(rollout.lstm_states.vf, rollout.episode_starts)
    th.testing.assert_close(
        model.policy.predict_values(rollout.observations, vf_states, starts),
        model.policy.predict_values(rollout.observations, rollout.lstm_states.vf, rollout.episode_starts),
    )
    # A start inside a sequence (not made by sb3_contrib's buffers): left to the step-by-step loop.
    mid = padded_sequences(model, dtype=th.float32)
    assert len(mid.lstm_states.pi) == 2
    assert reset_at_sequence_starts(mid.lstm_states.pi, mid.episode_starts) == (mid.lstm_states.pi, mid.episode_starts)


def test_one_update_stays_in_the_trust_region_on_the_real_steps():
    model = tiny_model(n_steps=64, target_kl=0.005)
    model.set_logger(RecordingLogger())
    collect_rollout(model)
    rollout = next(model.rollout_buffer.get(batch_size=None))
    with th.no_grad():
        old = model._action_distribution(rollout)
    model.train()
    with th.no_grad():
        kl = float(masked_mean(full_kl(old, model._action_distribution(rollout)), model._state_mask(rollout)))
    logged = model.logger.name_to_value
    assert logged["train/step_outcome"] == "accepted"
    assert 0 < kl <= 0.005
    assert kl == pytest.approx(logged["train/kl_divergence"], rel=1e-4)


def test_critic_epochs_never_touch_the_actor_or_its_lstm():
    model = tiny_model(n_critic_updates=3)
    collect_rollout(model)
    actor = [p.detach().clone() for p in model._actor_params]
    critic = [p.detach().clone() for p in model._critic_params]
    assert any(p is model.policy.lstm_actor.weight_hh_l0 for p in model._actor_params)
    assert model.policy.lstm_critic is not None
    assert any(p is model.policy.lstm_critic.weight_hh_l0 for p in model._critic_params)
    fit = model._fit_critic(next(model.rollout_buffer.get(batch_size=None)))
    assert fit.updates == 3 * 2  # 32 steps in minibatches of 16, 3 epochs
    assert fit.loss_after < fit.loss_before
    assert all(th.equal(a, p) for a, p in zip(actor, model._actor_params, strict=True))
    assert not all(th.equal(c, p) for c, p in zip(critic, model._critic_params, strict=True))


def test_an_exception_inside_the_line_search_leaves_the_actor_at_theta_old(monkeypatch):
    model = tiny_model()
    collect_rollout(model)
    before = [p.detach().clone() for p in model._actor_params]
    calls = []

    def failing_kl(old, new):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr("sb3_trpo_critic.trpo_critic.full_kl", failing_kl)
    with pytest.raises(KeyboardInterrupt):
        model.train()
    assert calls
    assert all(th.equal(b, p) for b, p in zip(before, model._actor_params, strict=True))


def test_shared_lstm_and_non_recurrent_policies_are_refused():
    env = make_vec_env(lambda: BoxTargetEnv(dim=2), n_envs=1)
    with pytest.raises(HyperparameterError, match="shared_lstm"):
        RecurrentTRPOCritic("MlpLstmPolicy", env, policy_kwargs=dict(shared_lstm=True, enable_critic_lstm=False))
    mlp_policy, lstm_policy = TRPOCritic.policy_aliases["MlpPolicy"], RecurrentTRPOCritic.policy_aliases["MlpLstmPolicy"]
    assert issubclass(mlp_policy, ActorCriticPolicy) and issubclass(lstm_policy, ActorCriticPolicy)
    with pytest.raises(HyperparameterError, match="must be recurrent"):
        RecurrentTRPOCritic(mlp_policy, env)
    with pytest.raises(HyperparameterError, match="RecurrentTRPOCritic"):
        TRPOCritic(lstm_policy, env)
    with pytest.raises(HyperparameterError, match="target_kl"):
        RecurrentTRPOCritic("MlpLstmPolicy", env, target_kl=0.0)


def test_a_critic_without_lstm_trains():
    model = tiny_model(policy_kwargs={**TINY, "enable_critic_lstm": False})
    assert not any(p is model.policy.lstm_actor.weight_hh_l0 for p in model._critic_params)
    model.learn(64)
    assert model.rejected_steps.get("nonfinite_gradient", 0) == 0


def test_dict_observations_and_discrete_actions():
    env = make_vec_env(lambda: SimpleMultiObsEnv(random_start=True), n_envs=2, seed=0)
    model = RecurrentTRPOCritic(
        "MultiInputLstmPolicy", env, n_steps=16, batch_size=16, sub_sampling_factor=2, seed=0, policy_kwargs=TINY
    )
    model.set_logger(RecordingLogger())
    model.learn(64)
    assert isinstance(model.action_space, spaces.Discrete)
    assert model.logger.name_to_value["train/n_updates"] == 2


def test_save_load_predict_with_recurrent_state_like_recurrent_ppo(tmp_path):
    env = make_vec_env(CueRecallEnv, n_envs=2, seed=0)
    model = tiny_model(env, n_steps=8)
    model.learn(32)
    model.save(tmp_path / "model.zip")
    loaded = RecurrentTRPOCritic.load(tmp_path / "model.zip", env=env)
    reference = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=16, policy_kwargs=TINY, seed=0)

    rng = np.random.default_rng(0)
    observations = rng.uniform(-1, 1, (5, 2, 2)).astype(np.float32)
    outputs = []
    for algorithm in (model, loaded, reference):
        state, starts, actions = None, np.ones(2, dtype=bool), []
        for obs in observations:
            action, state = algorithm.predict(obs, state=state, episode_start=starts, deterministic=True)
            starts = np.zeros(2, dtype=bool)
            actions.append(action)
        assert isinstance(state, tuple) and state[0].shape == (1, 2, 3)  # (n_layers, n_envs, hidden), as RecurrentPPO
        outputs.append((np.stack(actions), state))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1][0], outputs[1][1][0])
    loaded.learn(16)  # and the loaded model trains on


def test_load_of_a_trpo_critic_file_says_which_class_to_use(tmp_path):
    env = make_vec_env(lambda: BoxTargetEnv(dim=2), n_envs=1)
    TRPOCritic("MlpPolicy", env, n_steps=8, batch_size=8).save(tmp_path / "plain.zip")
    with pytest.raises(HyperparameterError, match="use TRPOCritic"):
        RecurrentTRPOCritic.load(tmp_path / "plain.zip")


def test_memory_beats_no_memory_on_cue_recall():
    """The cue is shown once and must be named two steps later: 0.5 without memory, near 1 with it."""
    env = make_vec_env(CueRecallEnv, n_envs=8, seed=0)
    settings: dict[str, Any] = dict(n_steps=32, batch_size=64, target_kl=0.02, n_critic_updates=5, seed=0)
    recurrent = RecurrentTRPOCritic(
        "MlpLstmPolicy", env, policy_kwargs=dict(lstm_hidden_size=8, net_arch=dict(pi=[16], vf=[16])), **settings
    )
    recurrent.learn(12_000)
    memoryless = TRPOCritic("MlpPolicy", make_vec_env(CueRecallEnv, n_envs=8, seed=0), **settings).learn(12_000)
    assert recurrent.ep_info_buffer is not None and memoryless.ep_info_buffer is not None
    recurrent_return = float(np.mean([info["r"] for info in recurrent.ep_info_buffer]))
    memoryless_return = float(np.mean([info["r"] for info in memoryless.ep_info_buffer]))
    assert memoryless_return < 0.65
    assert recurrent_return > 0.9


def test_cnn_lstm_policy_has_one_cnn_for_each_and_trains():
    from stable_baselines3.common.envs import FakeImageEnv

    env = make_vec_env(lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1), n_envs=2, seed=0)
    model = RecurrentTRPOCritic(
        "CnnLstmPolicy",
        env,
        n_steps=16,
        batch_size=16,
        seed=0,
        policy_kwargs=dict(lstm_hidden_size=8, features_extractor_kwargs=dict(features_dim=16)),
    )
    actor_cnn = set(map(id, model.policy.pi_features_extractor.parameters()))
    critic_cnn = set(map(id, model.policy.vf_features_extractor.parameters()))
    assert actor_cnn and actor_cnn <= set(map(id, model._actor_params))
    assert critic_cnn and critic_cnn <= set(map(id, model._critic_params))
    model.set_logger(RecordingLogger())
    model.learn(64)
    assert model.logger.name_to_value["train/n_updates"] == 2


def test_a_recurrent_ppo_file_is_refused_with_the_way_to_migrate(tmp_path):
    env = make_vec_env(CueRecallEnv, n_envs=2, seed=0)
    ppo = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=16, policy_kwargs=TINY, seed=0)
    ppo.save(tmp_path / "ppo.zip")
    with pytest.raises(ValueError, match=r"saved by sb3_contrib\.RecurrentPPO, not by RecurrentTRPOCritic"):
        RecurrentTRPOCritic.load(tmp_path / "ppo.zip")
    # docs/migrating.md: build one with the same policy arguments (and no observation normalizer, which
    # RecurrentPPO's policy does not have) and copy the policy's weights
    model = tiny_model(env, n_steps=8, normalize_observations=False)
    model.policy.load_state_dict(RecurrentPPO.load(tmp_path / "ppo.zip").policy.state_dict())
    obs = np.zeros((2, 2), dtype=np.float32)
    starts = np.ones(2, dtype=bool)
    theirs, _ = ppo.predict(obs, episode_start=starts, deterministic=True)
    ours, _ = model.predict(obs, episode_start=starts, deterministic=True)
    np.testing.assert_array_equal(ours, theirs)
