"""One train() at a time: the trust region holds, rejections restore the actor, the critic never moves it."""

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.logger import configure

import sb3_trpo_critic.trpo_critic as trpo_module
import sb3_trpo_critic.trust_region as trust_region
from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.trust_region import CGResult, full_kl
from tests.envs import BoxTargetEnv
from tests.training import TRAIN_VALUE_KEYS, collect_rollout

ENVS = {
    "discrete": lambda: IdentityEnv(dim=4, ep_length=20),
    "box_4d": lambda: BoxTargetEnv(dim=4),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(dim=3, ep_length=20),
    "multibinary": lambda: IdentityEnvMultiBinary(dim=3, ep_length=20),
}


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
    monkeypatch.setattr(trust_region, "is_acceptable_step", lambda *args: False)
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
    expected = TRAIN_VALUE_KEYS | {"train/std", "train/policy_step_time", "train/critic_time"}
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


def test_an_exception_inside_train_leaves_the_actor_at_theta_old(monkeypatch):
    """A KeyboardInterrupt while the line search evaluates a candidate: the actor is restored, not left there."""
    model = make_model("box_4d")
    collect_rollout(model)
    before = actor_snapshot(model)
    original_full_kl = trpo_module.full_kl
    calls = []

    def interrupted_full_kl(old, new):
        calls.append(1)
        # the candidate's parameters are in place now: they differ from theta_old
        assert not all_equal(actor_snapshot(model), before)
        raise KeyboardInterrupt

    monkeypatch.setattr(trpo_module, "full_kl", interrupted_full_kl)
    with pytest.raises(KeyboardInterrupt):
        model.train()
    assert calls == [1]
    assert all_equal(actor_snapshot(model), before)
    monkeypatch.setattr(trpo_module, "full_kl", original_full_kl)
    model.train()  # and the model trains on
    assert model.logger.history["train/step_outcome"] == ["accepted"]


def test_fisher_vector_products_see_every_kth_state(monkeypatch):
    """sub_sampling_factor=k: the Fisher is built on n/k states, the gradient on all n."""
    seen = []
    original = trpo_module.make_fisher_vector_product

    def spy(distribution, params, damping, mask):
        assert mask is None  # no padding without recurrence
        seen.append(trust_region.distribution_outputs(distribution)[0].shape[0])
        return original(distribution, params, damping, mask)

    monkeypatch.setattr(trpo_module, "make_fisher_vector_product", spy)
    for factor in (1, 4):
        model = make_model("box_4d", sub_sampling_factor=factor)
        collect_rollout(model)
        model.train()
    assert seen == [512, 128]


def test_critic_gradient_is_clipped_to_critic_max_grad_norm():
    model = make_model("box_4d", critic_max_grad_norm=1e-3, n_critic_updates=2)
    collect_rollout(model)
    norms = []
    original_step = model.policy.optimizer.step

    def step_and_record(*args, **kwargs):
        norms.append(float(th.linalg.vector_norm(th.stack([th.linalg.vector_norm(p.grad) for p in model._critic_params]))))
        return original_step(*args, **kwargs)

    model.policy.optimizer.step = step_and_record
    model.train()
    assert len(norms) == 2 * 512 // 64
    assert max(norms) <= 1e-3 * (1 + 1e-5)  # the raw gradients here are orders of magnitude larger


def test_line_search_accept_ratio_rejects_a_step_that_ratio_zero_accepts():
    """The same rollout and full step: accepted with ratio 0, rejected when the ratio exceeds actual/expected."""
    history = {}
    for ratio in (0.0, 0.9):
        # a large region: the full step is far enough for the surrogate to bend away from its linear model
        model = make_model("box_4d", target_kl=2.0, line_search_max_iter=1, line_search_accept_ratio=ratio)
        collect_rollout(model)
        model.train()
        history[ratio] = model.logger.history
    accepted = history[0.0]
    assert accepted["train/step_outcome"] == ["accepted"]
    achieved = accepted["train/surrogate_improvement"][0] / accepted["train/expected_improvement"][0]
    assert 0 < achieved < 0.9  # the real gain falls short of the linear model's (0.51 here)
    assert history[0.9]["train/step_outcome"] == ["line_search_failed"]


def test_repeated_nonfinite_rejections_warn(recwarn):
    model = make_model("box_4d")
    for update in range(1, 5):
        collect_rollout(model)
        model.rollout_buffer.advantages[3, 0] = np.nan
        model.train()
        warned = [w for w in recwarn if issubclass(w.category, RuntimeWarning) and "TRPOCritic" in str(w.message)]
        # the third rejection in a row for the same non-finite reason warns, once per streak
        assert len(warned) == (1 if update >= 3 else 0), update
    assert "nonfinite_gradient" in str(warned[0].message) and "not learning" in str(warned[0].message)
    assert model.rejected_steps == {"nonfinite_gradient": 4}


def test_a_target_kl_schedule_sets_each_updates_trust_region():
    """target_kl as a schedule of the progress remaining: each update is bounded by its value then; 0 takes no step."""
    model = make_model("box_4d", target_kl=lambda progress: 0.02 * progress)
    for progress, expected in ((1.0, 0.02), (0.25, 0.005), (0.0, 0.0), (-0.01, 0.0)):
        collect_rollout(model)
        model._current_progress_remaining = progress
        obs = th.as_tensor(model.rollout_buffer.observations.reshape(-1, 4))
        before = [p.detach().clone() for p in model._actor_params]
        with th.no_grad():
            old = copy.copy(model.policy.get_distribution(obs))
        model.train()
        with th.no_grad():
            kl = float(full_kl(old, model.policy.get_distribution(obs)).mean())
        history = model.logger.history
        assert history["train/target_kl"] == [pytest.approx(expected)]
        if expected > 0:
            assert history["train/step_outcome"] == ["accepted"]
            assert 0 < kl <= expected * (1 + 1e-5)
        else:  # an empty trust region: the actor stays exactly where it was
            assert history["train/step_outcome"] == ["line_search_failed"]
            assert all(th.equal(b, p) for b, p in zip(before, model._actor_params, strict=True))


@pytest.mark.parametrize("schedule", [lambda progress: 0.0, lambda progress: float("nan")])
def test_a_target_kl_schedule_must_start_positive(schedule):
    with pytest.raises(ValueError, match="target_kl must be a finite number > 0, or a schedule"):
        make_model("box_4d", target_kl=schedule)


def test_a_target_kl_schedule_is_saved_and_loaded(tmp_path):
    model = make_model("box_4d", target_kl=lambda progress: 0.03 * progress)
    model.save(tmp_path / "model.zip")
    loaded = TRPOCritic.load(tmp_path / "model.zip")
    assert loaded.target_kl(0.5) == pytest.approx(0.015)
