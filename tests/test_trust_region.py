"""The math of the policy step, each function against an explicit formula, in float64."""

import copy
import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution

from sb3_trpo_critic import MlpPolicy
from sb3_trpo_critic.policies import split_actor_critic_parameters
from sb3_trpo_critic.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    flat_concat,
    full_kl,
    is_acceptable_step,
    make_fisher_vector_product,
    set_parameters,
    trust_region_step_size,
)

OBS_SPACE = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
FAMILIES = {
    "diag_gaussian": (spaces.Box(-1.0, 1.0, (3,), dtype=np.float32), {}),
    "gsde": (spaces.Box(-1.0, 1.0, (2,), dtype=np.float32), {"use_sde": True}),
    "gsde_full_std_expln": (
        spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
        {"use_sde": True, "full_std": False, "use_expln": True},
    ),
    "categorical": (spaces.Discrete(4), {}),
    "multi_categorical": (spaces.MultiDiscrete([3, 2, 4]), {}),
    "bernoulli": (spaces.MultiBinary(3), {}),
}


@pytest.fixture(autouse=True)
def float64_observations(monkeypatch):
    """SB3 casts Box observations to float32; these tests run the policy in float64."""
    import stable_baselines3.common.policies as sb3_policies

    monkeypatch.setattr(sb3_policies, "preprocess_obs", lambda obs, *args, **kwargs: obs.double())


def output_layer(policy: MlpPolicy) -> th.nn.Linear:
    """The policy's last actor layer (a Linear for every action distribution of SB3)."""
    assert isinstance(policy.action_net, th.nn.Linear)
    return policy.action_net


def gaussian(distribution: Distribution) -> th.distributions.Normal:
    """The torch Normal inside SB3's (diagonal or gSDE) Gaussian distribution."""
    assert isinstance(distribution.distribution, th.distributions.Normal)
    return distribution.distribution


def categoricals(distribution: Distribution) -> list[th.distributions.Categorical]:
    """The torch Categoricals inside SB3's MultiCategorical distribution, one per subspace."""
    subspaces = distribution.distribution
    assert isinstance(subspaces, list)
    found = [categorical for categorical in subspaces if isinstance(categorical, th.distributions.Categorical)]
    assert len(found) == len(subspaces)
    return found


def tiny_policy(action_space: spaces.Space, seed: int = 0, **kwargs) -> MlpPolicy:
    th.manual_seed(seed)
    policy = MlpPolicy(
        OBS_SPACE,
        action_space,
        lambda _: 1e-3,
        net_arch=dict(pi=[4], vf=[4]),
        log_std_init=-0.3,
        **kwargs,
    )
    policy = policy.double()
    # Perturb the output layer so that categorical probabilities are far from uniform.
    with th.no_grad():
        output_layer(policy).weight.normal_(0.0, 1.0)
    return policy


def explicit_kl_hessian(policy: MlpPolicy, obs: th.Tensor, params: Sequence[th.Tensor]) -> th.Tensor:
    """Hessian of theta -> mean_s KL(pi_old(.|s) || pi_theta(.|s)) at theta_old, row by row by double backprop."""
    with th.no_grad():
        old = copy.copy(policy.get_distribution(obs))
    new = policy.get_distribution(obs)
    kl = full_kl(old, new).mean()
    gradient = flat_concat(th.autograd.grad(kl, params, create_graph=True))
    rows = [
        flat_concat(th.autograd.grad(gradient[i], params, retain_graph=True, allow_unused=True, materialize_grads=True))
        for i in range(gradient.numel())
    ]
    return th.stack(rows)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fisher_vector_product_equals_explicit_kl_hessian(family):
    action_space, kwargs = FAMILIES[family]
    policy = tiny_policy(action_space, **kwargs)
    actor_params, _ = split_actor_critic_parameters(policy)
    obs = th.rand(7, 3, dtype=th.float64) * 2 - 1

    hessian = explicit_kl_hessian(policy, obs, actor_params)
    damping = 0.1
    fvp = make_fisher_vector_product(copy.copy(policy.get_distribution(obs)), actor_params, damping)
    n = hessian.shape[0]
    fisher = th.stack([fvp(column) for column in th.eye(n, dtype=th.float64)], dim=1)

    assert th.allclose(fisher, hessian + damping * th.eye(n, dtype=th.float64), rtol=1e-9, atol=1e-11)
    assert th.linalg.matrix_norm(hessian) > 1e-3  # the comparison is not between two zeros
    v = th.randn(n, dtype=th.float64)
    assert th.allclose(fvp(v), hessian @ v + damping * v, rtol=1e-9, atol=1e-11)


def test_fisher_matches_gauss_newton_assembled_explicitly():
    """F = mean_s J_s^T M_s J_s with J from the full Jacobian and M = diag(1/sigma^2, 2/sigma^2)."""
    policy = tiny_policy(spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))
    actor_params, _ = split_actor_critic_parameters(policy)
    obs = th.rand(5, 3, dtype=th.float64)
    distribution = copy.copy(policy.get_distribution(obs))
    mean, std = gaussian(distribution).loc, gaussian(distribution).scale
    outputs = th.cat([mean, std], dim=1)  # (5, 4)
    jacobian = th.stack(
        [
            flat_concat(th.autograd.grad(outputs[s, k], actor_params, retain_graph=True, materialize_grads=True))
            for s in range(5)
            for k in range(4)
        ]
    ).reshape(5, 4, -1)
    metric = th.cat([1 / std**2, 2 / std**2], dim=1).detach()
    fisher = th.stack([jacobian[s].T @ th.diag(metric[s]) @ jacobian[s] for s in range(5)]).sum(dim=0) / 5
    fvp = make_fisher_vector_product(distribution, actor_params, damping=0.0)
    v = th.randn(fisher.shape[0], dtype=th.float64)
    assert th.allclose(fvp(v), fisher @ v, rtol=1e-10, atol=1e-12)


def test_full_kl_sums_gaussian_kl_over_dimensions():
    policy = tiny_policy(spaces.Box(-1.0, 1.0, (3,), dtype=np.float32))
    obs = th.rand(6, 3, dtype=th.float64)
    with th.no_grad():
        old = copy.copy(policy.get_distribution(obs))
        policy.log_std.add_(0.2)
        output_layer(policy).bias.add_(0.3)
        new = copy.copy(policy.get_distribution(obs))
    m0, s0 = gaussian(old).loc, gaussian(old).scale
    m1, s1 = gaussian(new).loc, gaussian(new).scale
    explicit = (th.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5).sum(dim=1)
    assert th.allclose(full_kl(old, new), explicit, rtol=1e-12)
    # sb3_contrib.TRPO's measure, the mean over dimensions, is 3x smaller here
    from stable_baselines3.common.distributions import kl_divergence

    assert th.allclose(kl_divergence(old, new).mean() * 3, full_kl(old, new).mean(), rtol=1e-12)


def test_full_kl_of_multicategorical_is_the_sum_over_subspaces():
    policy = tiny_policy(spaces.MultiDiscrete([3, 2]))
    obs = th.rand(4, 3, dtype=th.float64)
    with th.no_grad():
        old = copy.copy(policy.get_distribution(obs))
        output_layer(policy).bias.add_(th.linspace(-1, 1, 5, dtype=th.float64))
        new = copy.copy(policy.get_distribution(obs))
    explicit = th.stack(
        [
            (p.probs * (p.probs.log() - q.probs.log())).sum(dim=1)
            for p, q in zip(categoricals(old), categoricals(new), strict=True)
        ]
    ).sum(dim=0)
    assert th.allclose(full_kl(old, new), explicit, rtol=1e-12)


def random_spd(n: int, condition: float, seed: int) -> th.Tensor:
    generator = th.Generator().manual_seed(seed)
    q, _ = th.linalg.qr(th.randn(n, n, generator=generator, dtype=th.float64))
    eigenvalues = th.logspace(0, math.log10(condition), n, dtype=th.float64)
    return q @ th.diag(eigenvalues) @ q.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conjugate_gradient_solves_spd_systems(seed):
    a = random_spd(30, condition=100.0, seed=seed)
    b = th.randn(30, dtype=th.float64, generator=th.Generator().manual_seed(100 + seed))
    result = conjugate_gradient(lambda v: a @ v, b, max_iter=200, residual_tol=1e-20)
    assert result.converged_normally
    assert th.allclose(result.x, th.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert result.residual_squared_norm < 1e-20
    # exact arithmetic needs at most n steps; allow a few more for round-off
    assert result.iterations <= 40


def test_conjugate_gradient_respects_max_iter_and_tolerance():
    a = random_spd(30, condition=1e4, seed=3)
    b = th.ones(30, dtype=th.float64)
    calls = []

    def product(v):
        calls.append(1)
        return a @ v

    result = conjugate_gradient(product, b, max_iter=5)
    assert result.iterations == 5 == len(calls)
    residual = b - a @ result.x
    assert math.isclose(float(residual.dot(residual)), result.residual_squared_norm, rel_tol=1e-6)
    # a loose tolerance stops earlier than max_iter
    loose = conjugate_gradient(lambda v: a @ v, b, max_iter=100, residual_tol=1e-2 * float(b.dot(b)))
    assert loose.iterations < 30
    # b = 0: nothing to solve, no product taken
    zero = conjugate_gradient(product, th.zeros(30, dtype=th.float64), max_iter=5)
    assert zero.iterations == 0 and zero.converged_normally and th.count_nonzero(zero.x) == 0


def test_conjugate_gradient_reports_breakdown_on_indefinite_or_nan_matrix():
    indefinite = th.diag(th.tensor([1.0, -1.0], dtype=th.float64))
    result = conjugate_gradient(lambda v: indefinite @ v, th.tensor([0.0, 1.0], dtype=th.float64), max_iter=5)
    assert not result.converged_normally
    assert th.isfinite(result.x).all()
    nan_result = conjugate_gradient(lambda v: v * float("nan"), th.ones(3, dtype=th.float64), max_iter=5)
    assert not nan_result.converged_normally
    assert th.isfinite(nan_result.x).all()


@pytest.mark.parametrize("target_kl", [1e-3, 0.01, 0.05])
def test_full_step_reaches_the_quadratic_trust_region_boundary(target_kl):
    policy = tiny_policy(spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))
    actor_params, _ = split_actor_critic_parameters(policy)
    obs = th.rand(9, 3, dtype=th.float64)
    fvp = make_fisher_vector_product(copy.copy(policy.get_distribution(obs)), actor_params, damping=0.1)
    g = th.randn(sum(p.numel() for p in actor_params), dtype=th.float64)
    cg = conjugate_gradient(fvp, g, max_iter=10)
    beta = trust_region_step_size(cg.x_a_x, target_kl)
    assert math.isclose(float(0.5 * beta**2 * cg.x.dot(fvp(cg.x))), target_kl, rel_tol=1e-8)


@pytest.mark.parametrize("max_iter", [1, 3, 8, 40])
def test_conjugate_gradient_gives_x_a_x_without_another_product(max_iter):
    """x^T A x from CG's residual equals the explicit product, converged or stopped early."""
    generator = th.Generator().manual_seed(max_iter)
    q = th.linalg.qr(th.randn(20, 20, dtype=th.float64, generator=generator)).Q
    matrix = q @ th.diag(th.logspace(-2, 2, 20, dtype=th.float64)) @ q.T
    b = th.randn(20, dtype=th.float64, generator=generator)
    products = []

    def product(v):
        products.append(1)
        return matrix @ v

    result = conjugate_gradient(product, b, max_iter=max_iter, residual_tol=1e-20)
    assert len(products) == result.iterations  # no product beyond CG's own
    assert result.x_a_x == pytest.approx(float(result.x @ matrix @ result.x), rel=1e-9)


def test_step_size_of_a_degenerate_direction_is_nan():
    assert math.isnan(trust_region_step_size(0.0, 0.01))
    assert math.isnan(trust_region_step_size(-1e-3, 0.01))
    assert math.isnan(trust_region_step_size(float("nan"), 0.01))
    assert trust_region_step_size(2.0, 0.01) == pytest.approx(0.1)


def test_line_search_acceptance_rule():
    assert is_acceptable_step(0.1, 0.2, kl=0.009, target_kl=0.01, accept_ratio=0.0)
    assert is_acceptable_step(0.1, 0.2, kl=0.01, target_kl=0.01, accept_ratio=0.5)
    assert not is_acceptable_step(0.1, 0.2, kl=0.0101, target_kl=0.01, accept_ratio=0.0)  # outside the region
    assert not is_acceptable_step(0.0, 0.2, kl=0.001, target_kl=0.01, accept_ratio=0.0)  # no improvement
    assert not is_acceptable_step(-1e-3, 0.2, kl=0.001, target_kl=0.01, accept_ratio=0.0)
    assert not is_acceptable_step(0.09, 0.2, kl=0.001, target_kl=0.01, accept_ratio=0.5)  # below the ratio
    assert not is_acceptable_step(float("nan"), 0.2, kl=0.001, target_kl=0.01, accept_ratio=0.0)
    assert not is_acceptable_step(0.1, 0.2, kl=float("nan"), target_kl=0.01, accept_ratio=0.0)


# --- the backtracking line search, on a toy problem where improvement and KL are explicit formulas ----


def toy_line_search_problem(improvement_of, kl_of):
    """Two parameter tensors at theta_old; ``evaluate`` computes the figures from the displacement."""
    params = [th.nn.Parameter(th.tensor([1.0, -2.0], dtype=th.float64)), th.nn.Parameter(th.tensor([[0.5]], dtype=th.float64))]
    theta_old = [p.detach().clone() for p in params]
    evaluated: list[th.Tensor] = []

    def evaluate():
        displacement = flat_concat([p.detach() - old for p, old in zip(params, theta_old, strict=True)])
        evaluated.append(displacement.clone())
        return improvement_of(displacement), kl_of(displacement)

    return params, theta_old, evaluate, evaluated


FULL_STEP = th.tensor([0.3, 0.1, -0.2], dtype=th.float64)


def test_line_search_takes_the_first_acceptable_candidate():
    # KL grows as |step|^2: the full step (KL 0.14) and 0.5^1 (0.035) are outside 0.02, 0.5^2 (0.00875) is inside.
    params, theta_old, evaluate, evaluated = toy_line_search_problem(
        improvement_of=lambda s: float(s.sum()) + 1.0, kl_of=lambda s: float(s.dot(s))
    )
    result = backtracking_line_search(
        params, FULL_STEP, expected_improvement=1.0, evaluate=evaluate, target_kl=0.02, shrinking_factor=0.5, max_iter=10
    )
    assert result.accepted and result.steps == 3 and result.fraction == 0.25
    assert result.kl == pytest.approx(0.25**2 * float(FULL_STEP.dot(FULL_STEP)))
    for j, displacement in enumerate(evaluated):
        assert th.allclose(displacement, 0.5**j * FULL_STEP)
    # the parameters stay at the accepted candidate
    assert th.allclose(flat_concat([p.detach() - old for p, old in zip(params, theta_old, strict=True)]), 0.25 * FULL_STEP)


def test_line_search_without_an_acceptable_candidate_restores_theta_old_bit_for_bit():
    params, theta_old, evaluate, evaluated = toy_line_search_problem(lambda s: -1.0, lambda s: 0.0)  # never improves
    result = backtracking_line_search(params, FULL_STEP, 1.0, evaluate, target_kl=0.02, shrinking_factor=0.8, max_iter=4)
    assert result == (False, 4, 0.0, 0.0, 0.0)
    assert len(evaluated) == 4
    assert all(th.equal(p, old) for p, old in zip(params, theta_old, strict=True))


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_exception_during_the_line_search_restores_theta_old(error):
    """Ctrl-C (or any error) while a candidate is evaluated never leaves the parameters at that candidate."""
    calls = []

    def kl_of(displacement):
        calls.append(1)
        if len(calls) == 2:
            raise error("interrupted while the second candidate is evaluated")
        return 1.0  # outside the region: the first candidate is rejected

    params, theta_old, evaluate, _ = toy_line_search_problem(lambda s: 1.0, kl_of)
    with pytest.raises(error):
        backtracking_line_search(params, FULL_STEP, 1.0, evaluate, target_kl=0.02, shrinking_factor=0.5, max_iter=10)
    assert all(th.equal(p, old) for p, old in zip(params, theta_old, strict=True))


def test_line_search_accept_ratio_rejects_a_step_below_the_linear_prediction():
    # every candidate improves by 40% of the linear model's prediction for it, inside the region
    def run(accept_ratio):
        params, _, evaluate, _ = toy_line_search_problem(
            lambda s: 0.4 * float(s.sum()) / float(FULL_STEP.sum()), lambda s: 0.0
        )
        return backtracking_line_search(params, FULL_STEP, 1.0, evaluate, 0.02, 0.5, 5, accept_ratio=accept_ratio)

    assert run(0.3).accepted and run(0.3).steps == 1
    assert not run(0.5).accepted


def test_set_parameters():
    params = [th.nn.Parameter(th.zeros(2, 2)), th.nn.Parameter(th.zeros(3))]
    origin = [th.ones(2, 2), th.full((3,), 2.0)]
    set_parameters(params, origin, th.arange(7.0))
    assert th.equal(params[0], th.tensor([[1.0, 2.0], [3.0, 4.0]])) and th.equal(params[1], th.tensor([6.0, 7.0, 8.0]))
    set_parameters(params, origin)
    assert th.equal(params[0], origin[0]) and th.equal(params[1], origin[1])
