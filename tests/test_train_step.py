"""One train() at a time: the trust region holds, rejections restore the actor, the critic never moves it."""

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.logger import configure

import sb3_trpo_critic.trpo_critic as trpo_module
import sb3_trpo_critic.trust_region as trust_region
from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic
from sb3_trpo_critic.logged import LOGGED_VALUES, UpdateRecord
from sb3_trpo_critic.trpo_critic import CriticFitResult, PolicyStepResult
from sb3_trpo_critic.trust_region import CGResult, flat_concat, full_kl
from tests.envs import BoxTargetEnv
from tests.training import LOGGED_KEYS, RecordingLogger, collect_rollout

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


def make_model(env_name: str, cls: type[TRPOCritic] = TRPOCritic, **kwargs: Any) -> TRPOCritic:
    env = make_vec_env(ENVS[env_name], n_envs=2, seed=0)
    # the trust region, damping and initial std these tests were written for, not the action-space-aware defaults
    params: dict[str, Any] = dict(
        n_steps=256,
        batch_size=64,
        target_kl=0.01,
        cg_damping=0.1,
        policy_kwargs=dict(log_std_init=0.0),
        n_critic_updates=3,
        seed=0,
        device="cpu",
    )
    params.update(kwargs)
    return cls("MlpPolicy", env, **params)


def trained_once(model: TRPOCritic) -> TRPOCritic:
    """The model after one ``train()`` on a fresh rollout."""
    collect_rollout(model)
    model.train()
    return model


def last_step(model: TRPOCritic) -> PolicyStepResult:
    """The last update's policy step (set by every ``train()``)."""
    assert model.last_policy_step is not None
    return model.last_policy_step


def last_fit(model: TRPOCritic) -> CriticFitResult:
    """The last update's critic regression (set by every ``train()``)."""
    assert model.last_critic_fit is not None
    return model.last_critic_fit


def logged_history(model: TRPOCritic) -> dict[str, list]:
    """Every value logged so far, by key (the model logs to a RecordingLogger: see ``collect_rollout``)."""
    logger = model.logger
    assert isinstance(logger, RecordingLogger)
    return logger.history


@pytest.mark.parametrize("env_name", list(ENVS))
@pytest.mark.parametrize("target_kl", [0.003, 0.03])
def test_one_update_stays_inside_the_trust_region(env_name, target_kl):
    model = make_model(env_name, target_kl=target_kl)
    collect_rollout(model)
    assert model.observation_space.shape is not None
    obs = th.as_tensor(model.rollout_buffer.observations.reshape(-1, *model.observation_space.shape))
    with th.no_grad():
        old = copy.copy(model.policy.get_distribution(obs))
    model.train()
    with th.no_grad():
        new = copy.copy(model.policy.get_distribution(obs))
        kl = float(full_kl(old, new).mean())
    step = last_step(model)
    assert step.outcome == "accepted"
    assert 0.0 < kl <= target_kl * (1 + 1e-5)
    assert step.kl == pytest.approx(kl, rel=1e-4)
    # The accepted step is a real improvement of the surrogate, as the linear model predicted.
    assert step.improvement > 0
    assert step.expected_improvement > 0


def test_the_full_step_is_taken_when_the_quadratic_model_is_accurate():
    """With a small region the quadratic model of the KL is accurate: the first candidate passes, KL ~ delta."""
    step = last_step(trained_once(make_model("box_4d", target_kl=1e-4, cg_max_steps=30)))
    assert step.line_search_steps == 1
    assert step.kl == pytest.approx(1e-4, rel=0.1)


@pytest.mark.parametrize("env_name", ["discrete", "box_4d"])
def test_rejected_step_leaves_the_actor_bit_identical(env_name, monkeypatch):
    model = make_model(env_name)
    collect_rollout(model)
    before_actor, before_critic = actor_snapshot(model), critic_snapshot(model)
    monkeypatch.setattr(trust_region, "is_acceptable_step", lambda *args: False)
    model.train()
    step = last_step(model)
    assert step.outcome == "line_search_failed"
    assert step.line_search_steps == model.line_search_max_iter
    assert step.kl == 0.0
    assert model.rejected_steps == {"line_search_failed": 1}
    # the actor is restored exactly; the critic epochs still ran and moved the critic only
    assert all_equal(actor_snapshot(model), before_actor)
    assert not all_equal(critic_snapshot(model), before_critic)


def test_critic_epochs_never_touch_the_actor(monkeypatch):
    model = make_model("box_4d", n_critic_updates=10)
    optimized = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model._critic_params}
    assert optimized.isdisjoint(id(p) for p in model._actor_params)
    collect_rollout(model)
    # Run the policy step, then compare the actor after the critic epochs with the actor before them.
    snapshots: list[list[th.Tensor]] = []
    original_step = model.policy.optimizer.step

    def step_and_snapshot(*args, **kwargs):
        if not snapshots:
            snapshots.append(actor_snapshot(model))
        return original_step(*args, **kwargs)

    monkeypatch.setattr(model.policy.optimizer, "step", step_and_snapshot)
    model.train()
    assert snapshots, "the critic optimizer never stepped"
    assert all_equal(actor_snapshot(model), snapshots[0])
    assert last_fit(model).updates == 10 * (512 // 64)
    assert last_fit(model).loss_after < last_fit(model).loss_before


def test_nonfinite_gradient_rejects_the_step_and_nothing_becomes_nan():
    model = make_model("box_4d")
    collect_rollout(model)
    model.rollout_buffer.advantages[3, 0] = np.nan
    before = actor_snapshot(model)
    model.train()
    assert last_step(model).outcome == "nonfinite_gradient"
    assert all_equal(actor_snapshot(model), before)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


class BrokenSolve(TRPOCritic):
    def _solve(self, fisher_vector_product, gradient):
        return CGResult(th.full_like(gradient, float("nan")), 3, float("nan"), False)


def test_cg_breakdown_rejects_the_step():
    model = make_model("discrete", cls=BrokenSolve)
    collect_rollout(model)
    before = actor_snapshot(model)
    model.train()
    assert last_step(model).outcome == "cg_breakdown"
    assert last_step(model).cg_iterations == 3
    assert all_equal(actor_snapshot(model), before)
    assert model.rejected_steps == {"cg_breakdown": 1}


def test_nonfinite_returns_skip_the_critic_and_keep_it_finite():
    model = make_model("box_4d")
    collect_rollout(model)
    model.rollout_buffer.returns[0, 1] = np.inf
    before = critic_snapshot(model)
    model.train()
    assert last_fit(model).updates == 0
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
    assert last_step(model).outcome == "accepted"
    assert 0 < kl <= 0.01 * (1 + 1e-5)


def test_logged_keys():
    model = make_model("box_4d")
    assert model.last_policy_step is None and model.last_critic_fit is None  # before the first update
    trained_once(model)
    history = logged_history(model)
    assert {key for key in history if key.startswith("train/")} == LOGGED_KEYS
    step = last_step(model)
    assert 1 <= step.cg_iterations <= model.cg_max_steps
    assert step.step_norm > 0
    assert history["train/policy_step_time"][0] > 0 and history["train/critic_time"][0] > 0
    assert step.std == pytest.approx(1.0, rel=1e-6)  # log_std_init=0, before the step


@pytest.mark.parametrize("env_name", ["discrete", "box_4d"])
def test_each_logged_value_is_its_rows_value_of_the_last_results(env_name):
    """train() logs one value per row of the table, computed from model.last_policy_step and last_critic_fit."""
    model = trained_once(make_model(env_name))
    history, excluded = logged_history(model), model.logger.name_to_excluded
    update = UpdateRecord(
        last_step(model),
        last_fit(model),
        n_rejected_steps=0,
        explained_variance=history["train/explained_variance"][0],
        policy_step_time=history["train/policy_step_time"][0],
        critic_time=history["train/critic_time"][0],
        n_updates=1,
    )
    gaussian = env_name == "box_4d"
    for row in LOGGED_VALUES:
        if not row.every_update and not gaussian:
            assert row.key not in history, row.key
            continue
        if row.source is not None:  # (train/learning_rate is SB3's)
            (logged,) = history[row.key]
            expected = row.value(update)
            assert type(logged) is type(expected) and (logged == expected or logged != logged), row.key
        assert excluded[row.key] == model.logger.to_tuple(row.exclude), row.key
    assert excluded["train/step_outcome"] == ("tensorboard",) and excluded["train/n_updates"] == ("tensorboard",)
    # a few of the rows, spelled out
    assert history["train/policy_objective"] == [update.step.surrogate + update.step.improvement]
    assert history["train/kl_divergence"] == [update.step.kl] and history["train/value_loss"] == [update.fit.loss_after]
    assert history["train/is_line_search_success"] == [1.0] and history["train/n_updates"] == [1]


def test_the_last_results_are_not_saved(tmp_path):
    model = trained_once(make_model("box_4d"))
    model.save(tmp_path / "model.zip")
    loaded = TRPOCritic.load(tmp_path / "model.zip")
    assert loaded.last_policy_step is None and loaded.last_critic_fit is None
    assert model.last_policy_step is not None  # (the saved model keeps its own)


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
    assert last_step(model).outcome == "accepted"


def test_fisher_vector_products_see_every_kth_state():
    """sub_sampling_factor=k: the Fisher is built on n/k states, the gradient on all n."""
    seen = []

    class Spy(TRPOCritic):
        def _fisher_vector_product(self, distribution, mask):
            assert mask is None  # no padding without recurrence
            seen.append(trust_region.distribution_outputs(distribution)[0].shape[0])
            return super()._fisher_vector_product(distribution, mask)

    for factor in (1, 4):
        trained_once(make_model("box_4d", cls=Spy, sub_sampling_factor=factor))
    assert seen == [512, 128]


class CountingProducts(TRPOCritic):
    """The default product, counted."""

    products = 0

    def _fisher_vector_product(self, distribution, mask):
        product = super()._fisher_vector_product(distribution, mask)

        def counted(vector):
            self.products += 1
            return product(vector)

        return counted


class EuclideanMetric(TRPOCritic):
    """The identity in place of F + lambda I: the step becomes a plain gradient step of norm sqrt(2 delta)."""

    def _fisher_vector_product(self, distribution, mask):
        return lambda vector: vector.clone()


def test_an_overridden_fisher_vector_product_is_the_one_used():
    counting = trained_once(make_model("box_4d", cls=CountingProducts))
    assert isinstance(counting, CountingProducts)
    assert counting.products == last_step(counting).cg_iterations > 1
    model = trained_once(make_model("box_4d", cls=EuclideanMetric, target_kl=0.01))
    step = last_step(model)
    # CG solves I x = g in one product, exactly; beta x = sqrt(2 delta) g / |g|, shrunk by the line search
    assert step.outcome == "accepted"
    assert step.cg_iterations == 1 and step.cg_residual == pytest.approx(0.0, abs=1e-12)
    shrink = model.line_search_shrinking_factor ** (step.line_search_steps - 1)
    assert step.step_norm == pytest.approx(shrink * math.sqrt(2 * 0.01), rel=1e-5)


class GradientDirection(TRPOCritic):
    """A solve that returns the gradient itself (no CG): x = g, x^T A x from one product."""

    solved: list[tuple[th.Tensor, float]]

    def _solve(self, fisher_vector_product, gradient):
        x_a_x = float(gradient.dot(fisher_vector_product(gradient)))
        self.solved = [*getattr(self, "solved", []), (gradient.clone(), x_a_x)]
        return CGResult(gradient.clone(), 7, 0.25, True, x_a_x)


def test_an_overridden_solve_is_the_one_used():
    model = make_model("box_4d", cls=GradientDirection, line_search_max_iter=30)
    assert isinstance(model, GradientDirection)
    collect_rollout(model)
    before = flat_concat(actor_snapshot(model))
    model.train()
    step = last_step(model)
    assert step.outcome == "accepted"
    assert (step.cg_iterations, step.cg_residual) == (7, 0.25)  # the override's numbers, logged
    ((g, g_a_g),) = model.solved
    moved = flat_concat(actor_snapshot(model)) - before
    # the actor moved along g, by the step norm logged
    assert float(th.nn.functional.cosine_similarity(moved, g, dim=0)) == pytest.approx(1.0, abs=1e-5)
    assert float(th.linalg.vector_norm(moved)) == pytest.approx(step.step_norm, rel=1e-4)
    # the full step is beta g, beta = sqrt(2 delta / g^T A g): the linear model's gain is beta |g|^2
    assert step.expected_improvement == pytest.approx(math.sqrt(2 * 0.01 / g_a_g) * float(g.dot(g)), rel=1e-5)


def test_the_hooks_are_used_by_the_recurrent_model():
    """RecurrentTRPOCritic inherits the hooks: the product gets the mask of the sequences' real steps."""
    masks = []

    class Recurrent(RecurrentTRPOCritic):
        def _fisher_vector_product(self, distribution, mask):
            masks.append(mask)
            return super()._fisher_vector_product(distribution, mask)

        def _solve(self, fisher_vector_product, gradient):
            return CGResult(th.full_like(gradient, float("nan")), 2, float("nan"), False)

    env = make_vec_env(lambda: BoxTargetEnv(dim=2, ep_length=5), n_envs=2, seed=0)
    policy_kwargs = dict(lstm_hidden_size=4, net_arch=[8])
    model = Recurrent("MlpLstmPolicy", env, n_steps=16, batch_size=16, seed=0, device="cpu", policy_kwargs=policy_kwargs)
    trained_once(model)
    (mask,) = masks
    assert mask is not None and mask.dtype == th.bool and int(mask.sum()) == 32
    assert (last_step(model).outcome, last_step(model).cg_iterations) == ("cg_breakdown", 2)


def test_critic_gradient_is_clipped_to_critic_max_grad_norm(monkeypatch):
    model = make_model("box_4d", critic_max_grad_norm=1e-3, n_critic_updates=2)
    collect_rollout(model)
    norms = []
    original_step = model.policy.optimizer.step

    def step_and_record(*args, **kwargs):
        norms.append(float(th.linalg.vector_norm(th.stack([th.linalg.vector_norm(p.grad) for p in model._critic_params]))))
        return original_step(*args, **kwargs)

    monkeypatch.setattr(model.policy.optimizer, "step", step_and_record)
    model.train()
    assert len(norms) == 2 * 512 // 64
    assert max(norms) <= 1e-3 * (1 + 1e-5)  # the raw gradients here are orders of magnitude larger


def test_line_search_accept_ratio_rejects_a_step_that_ratio_zero_accepts():
    """The same rollout and full step: accepted with ratio 0, rejected when the ratio exceeds actual/expected."""
    history = {}
    for ratio in (0.0, 0.9):
        # a large region: the full step is far enough for the surrogate to bend away from its linear model
        model = make_model("box_4d", target_kl=2.0, line_search_max_iter=1, line_search_accept_ratio=ratio)
        history[ratio] = last_step(trained_once(model))
    accepted = history[0.0]
    assert accepted.outcome == "accepted"
    achieved = accepted.improvement / accepted.expected_improvement
    assert 0 < achieved < 0.9  # the real gain falls short of the linear model's (0.51 here)
    assert history[0.9].outcome == "line_search_failed"


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
        step = last_step(model)
        assert logged_history(model)["train/target_kl"] == [step.target_kl]
        assert step.target_kl == pytest.approx(expected)
        if expected > 0:
            assert step.outcome == "accepted"
            assert 0 < kl <= expected * (1 + 1e-5)
        else:  # an empty trust region: the actor stays exactly where it was
            assert step.outcome == "line_search_failed"
            assert all(th.equal(b, p) for b, p in zip(before, model._actor_params, strict=True))


@pytest.mark.parametrize("schedule", [lambda progress: 0.0, lambda progress: float("nan")])
def test_a_target_kl_schedule_must_start_positive(schedule):
    with pytest.raises(ValueError, match=r"target_kl must be None \(.*\), a finite number > 0, or a schedule"):
        make_model("box_4d", target_kl=schedule)


def test_a_target_kl_schedule_is_saved_and_loaded(tmp_path):
    model = make_model("box_4d", target_kl=lambda progress: 0.03 * progress)
    model.save(tmp_path / "model.zip")
    loaded = TRPOCritic.load(tmp_path / "model.zip")
    assert callable(loaded.target_kl)
    assert loaded.target_kl(0.5) == pytest.approx(0.015)
