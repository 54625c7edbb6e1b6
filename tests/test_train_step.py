"""One train() at a time: the trust region holds, rejections restore the actor, the critic never moves it."""

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.logger import Logger, configure

import sb3_trpo_critic.trpo_critic as trpo_module
from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.trust_region import CGResult, full_kl
from tests.envs import BoxTargetEnv

ENVS = {
    "discrete": lambda: IdentityEnv(dim=4, ep_length=20),
    "box_4d": lambda: BoxTargetEnv(dim=4),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(dim=3, ep_length=20),
    "multibinary": lambda: IdentityEnvMultiBinary(dim=3, ep_length=20),
}


class RecordingLogger(Logger):
    """An SB3 logger that keeps every recorded value (stdout muted)."""

    def __init__(self):
        super().__init__(folder=None, output_formats=[])
        self.history: dict[str, list] = {}

    def record(self, key, value, exclude=None):
        self.history.setdefault(key, []).append(value)
        super().record(key, value, exclude)


def collect_rollout(model: TRPOCritic) -> None:
    """Fill the rollout buffer exactly as ``learn()`` does before calling ``train()``."""
    _, callback = model._setup_learn(model.n_steps * model.n_envs, callback=None)
    logger = RecordingLogger()
    model.set_logger(logger)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def actor_snapshot(model: TRPOCritic) -> list[th.Tensor]:
    return [p.detach().clone() for p in model._actor_params]


def critic_snapshot(model: TRPOCritic) -> list[th.Tensor]:
    return [p.detach().clone() for p in model._critic_params]


def all_equal(a: list[th.Tensor], b: list[th.Tensor]) -> bool:
    return all(th.equal(x, y) for x, y in zip(a, b, strict=True))


def make_model(env_name: str, **kwargs) -> TRPOCritic:
    env = make_vec_env(ENVS[env_name], n_envs=2, seed=0)
    params = dict(n_steps=256, batch_size=64, target_kl=0.01, n_critic_updates=3, seed=0, device="cpu")
    params.update(kwargs)
    return TRPOCritic("MlpPolicy", env, **params)


@pytest.mark.parametrize("env_name", list(ENVS))
@pytest.mark.parametrize("target_kl", [0.003, 0.03])
def test_one_update_stays_inside_the_trust_region(env_name, target_kl):
    model = make_model(env_name, target_kl=target_kl)
    collect_rollout(model)
    obs = th.as_tensor(model.rollout_buffer.observations.reshape(-1, *model.observation_space.shape))
    with th.no_grad():
        old = copy.copy(model.policy.get_distribution(obs))
    model.train()
    with th.no_grad():
        new = copy.copy(model.policy.get_distribution(obs))
        kl = float(full_kl(old, new).mean())
    history = model.logger.history
    assert history["train/step_outcome"] == ["accepted"]
    assert 0.0 < kl <= target_kl * (1 + 1e-5)
    assert history["train/kl_divergence"][0] == pytest.approx(kl, rel=1e-4)
    # The accepted step is a real improvement of the surrogate, as the linear model predicted.
    assert history["train/surrogate_improvement"][0] > 0
    assert history["train/expected_improvement"][0] > 0


def test_the_full_step_is_taken_when_the_quadratic_model_is_accurate():
    """With a small region the quadratic model of the KL is accurate: the first candidate passes, KL ~ delta."""
    model = make_model("box_4d", target_kl=1e-4, cg_max_steps=30)
    collect_rollout(model)
    model.train()
    history = model.logger.history
    assert history["train/line_search_steps"] == [1]
    assert history["train/kl_divergence"][0] == pytest.approx(1e-4, rel=0.1)


@pytest.mark.parametrize("env_name", ["discrete", "box_4d"])
def test_rejected_step_leaves_the_actor_bit_identical(env_name, monkeypatch):
    model = make_model(env_name)
    collect_rollout(model)
    before_actor, before_critic = actor_snapshot(model), critic_snapshot(model)
    monkeypatch.setattr(trpo_module, "is_acceptable_step", lambda *args: False)
    model.train()
    history = model.logger.history
    assert history["train/step_outcome"] == ["line_search_failed"]
    assert history["train/line_search_steps"] == [model.line_search_max_iter]
    assert history["train/kl_divergence"] == [0.0]
    assert model.rejected_steps == {"line_search_failed": 1}
    # the actor is restored exactly; the critic epochs still ran and moved the critic only
    assert all_equal(actor_snapshot(model), before_actor)
    assert not all_equal(critic_snapshot(model), before_critic)


def test_critic_epochs_never_touch_the_actor():
    model = make_model("box_4d", n_critic_updates=10)
    optimized = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model._critic_params}
    assert optimized.isdisjoint(id(p) for p in model._actor_params)
    collect_rollout(model)
    # Run the policy step, then compare the actor after the critic epochs with the actor before them.
    snapshots = []
    original_step = model.policy.optimizer.step

    def step_and_snapshot(*args, **kwargs):
        if not snapshots:
            snapshots.append(actor_snapshot(model))
        return original_step(*args, **kwargs)

    model.policy.optimizer.step = step_and_snapshot
    model.train()
    assert snapshots, "the critic optimizer never stepped"
    assert all_equal(actor_snapshot(model), snapshots[0])
    assert model.logger.history["train/critic_updates"] == [10 * (512 // 64)]
    assert model.logger.history["train/value_loss"][0] < model.logger.history["train/value_loss_before"][0]


def test_nonfinite_gradient_rejects_the_step_and_nothing_becomes_nan():
    model = make_model("box_4d")
    collect_rollout(model)
    model.rollout_buffer.advantages[3, 0] = np.nan
    before = actor_snapshot(model)
    model.train()
    assert model.logger.history["train/step_outcome"] == ["nonfinite_gradient"]
    assert all_equal(actor_snapshot(model), before)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_cg_breakdown_rejects_the_step(monkeypatch):
    model = make_model("discrete")
    collect_rollout(model)
    before = actor_snapshot(model)

    def broken_cg(product, b, max_iter, residual_tol):
        return CGResult(th.full_like(b, float("nan")), 3, float("nan"), False)

    monkeypatch.setattr(trpo_module, "conjugate_gradient", broken_cg)
    model.train()
    assert model.logger.history["train/step_outcome"] == ["cg_breakdown"]
    assert all_equal(actor_snapshot(model), before)
    assert model.rejected_steps == {"cg_breakdown": 1}


def test_nonfinite_returns_skip_the_critic_and_keep_it_finite():
    model = make_model("box_4d")
    collect_rollout(model)
    model.rollout_buffer.returns[0, 1] = np.inf
    before = critic_snapshot(model)
    model.train()
    assert model.logger.history["train/critic_updates"] == [0]
    assert all_equal(critic_snapshot(model), before)


def test_sub_sampling_changes_only_the_fisher_states():
    """With sub-sampling the step still honours the trust region measured on the whole rollout."""
    model = make_model("box_4d", sub_sampling_factor=4, target_kl=0.01)
    collect_rollout(model)
    obs = th.as_tensor(model.rollout_buffer.observations.reshape(-1, 4))
    with th.no_grad():
        old = copy.copy(model.policy.get_distribution(obs))
    model.train()
    with th.no_grad():
        kl = float(full_kl(old, copy.copy(model.policy.get_distribution(obs))).mean())
    assert model.logger.history["train/step_outcome"] == ["accepted"]
    assert 0 < kl <= 0.01 * (1 + 1e-5)


def test_logged_keys():
    model = make_model("box_4d")
    collect_rollout(model)
    model.train()
    expected = {
        "train/kl_divergence",
        "train/surrogate_improvement",
        "train/expected_improvement",
        "train/line_search_steps",
        "train/is_line_search_success",
        "train/cg_iterations",
        "train/cg_residual",
        "train/step_norm",
        "train/entropy",
        "train/value_loss_before",
        "train/value_loss",
        "train/explained_variance",
        "train/std",
        "train/n_updates",
        "train/policy_step_time",
        "train/critic_time",
        "train/learning_rate",
    }
    history = model.logger.history
    assert expected <= set(history)
    assert 1 <= history["train/cg_iterations"][0] <= model.cg_max_steps
    assert history["train/step_norm"][0] > 0
    assert history["train/policy_step_time"][0] > 0 and history["train/critic_time"][0] > 0
    assert history["train/std"][0] == pytest.approx(1.0, rel=1e-6)  # log_std_init=0, before the step


def test_stdout_logger_prints_a_train_table(capsys):
    model = make_model("discrete")
    model.set_logger(configure(None, ["stdout"]))
    model.learn(1024)  # train() logs are dumped at the start of the next iteration
    out = capsys.readouterr().out
    assert "kl_divergence" in out and "value_loss" in out
