"""The mathematics of a TRPO policy step, as small pure functions.

Each function computes one equation of the method and is tested on its own against an
explicit formula (``tests/test_trust_region.py``):

* :func:`full_kl` -- the KL divergence of the whole action distribution, per state:
  :math:`D_{KL}(\\pi_{old}(\\cdot|s) \\,\\|\\, \\pi_\\theta(\\cdot|s))`, summed over action dimensions.
* :func:`distribution_outputs` and :func:`fisher_metric` -- the distribution's parameters
  :math:`\\eta(s)` and the closed-form Fisher metric :math:`M` of the distribution in those
  parameters, so that the Fisher of the policy is :math:`F = \\mathbb{E}_s[J^\\top M J]`,
  :math:`J = \\partial \\eta / \\partial \\theta`.
* :func:`make_fisher_vector_product` -- :math:`v \\mapsto (F + \\lambda I) v`.
* :func:`masked_mean` -- :math:`\\hat{\\mathbb{E}}_s` over the states of the data (not the padding
  of recurrent sequences).
* :func:`conjugate_gradient` -- :math:`x \\approx (F + \\lambda I)^{-1} g`.
* :func:`trust_region_step_size` -- :math:`\\beta = \\sqrt{2\\delta / x^\\top (F + \\lambda I) x}`.
* :func:`backtracking_line_search` -- the first :math:`\\theta_{old} + \\alpha^j \\beta x` that
  :func:`is_acceptable_step` accepts, or :math:`\\theta_{old}` restored exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch as th
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
    kl_divergence,
)

#: The action distributions whose Fisher metric is known in closed form here.
SUPPORTED_DISTRIBUTIONS = (
    DiagGaussianDistribution,  # includes SquashedDiagGaussianDistribution
    StateDependentNoiseDistribution,
    CategoricalDistribution,
    MultiCategoricalDistribution,
    BernoulliDistribution,
)


def full_kl(old: Distribution, new: Distribution) -> th.Tensor:
    """
    Per-state KL divergence ``KL(old || new)`` of the whole action distribution.

    SB3's :func:`~stable_baselines3.common.distributions.kl_divergence` returns one value per
    action dimension for Box and MultiBinary actions (and the mean of that, as taken by
    ``sb3_contrib.TRPO``, is the KL *averaged* over dimensions). The dimensions are independent,
    so the KL of the joint distribution -- the quantity the TRPO paper bounds -- is their sum.

    :param old: the distribution of the policy that collected the data
    :param new: the distribution of the candidate policy, on the same states
    :return: tensor of shape ``(n_states,)``
    """
    kl = kl_divergence(old, new)
    return kl.sum(dim=-1) if kl.dim() > 1 else kl


def distribution_outputs(distribution: Distribution) -> list[th.Tensor]:
    """
    The tensors :math:`\\eta` that parameterize an SB3 action distribution, in the order
    :func:`fisher_metric` expects them.

    * Diagonal Gaussian and gSDE: ``[mean, std]`` (each ``(n, action_dim)``)
    * Categorical: ``[log_probs]`` (normalized logits, ``(n, n_actions)``)
    * MultiCategorical: one ``log_probs`` tensor per sub-space
    * Bernoulli (MultiBinary): ``[logits]``

    :param distribution: an SB3 distribution after ``proba_distribution``
    :return: the parameter tensors, still attached to the autograd graph
    """
    if isinstance(distribution, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        normal = distribution.distribution
        return [normal.loc, normal.scale]
    if isinstance(distribution, CategoricalDistribution):
        return [distribution.distribution.logits]
    if isinstance(distribution, MultiCategoricalDistribution):
        return [categorical.logits for categorical in distribution.distribution]
    if isinstance(distribution, BernoulliDistribution):
        return [distribution.distribution.logits]
    raise TypeError(
        f"TRPOCritic has no Fisher metric for {type(distribution).__name__}; "
        f"supported: {', '.join(d.__name__ for d in SUPPORTED_DISTRIBUTIONS)}"
    )


def fisher_metric(distribution: Distribution, vectors: Sequence[th.Tensor]) -> list[th.Tensor]:
    """
    Apply the Fisher metric :math:`M(\\eta)` of the action distribution, per state, to
    tangent vectors of its parameters :math:`\\eta` (:func:`distribution_outputs`).
    :math:`M` is the Hessian of :math:`\\eta' \\mapsto KL(p_\\eta \\| p_{\\eta'})` at
    :math:`\\eta' = \\eta`:

    * Gaussian, per dimension: :math:`M_{\\mu} = 1/\\sigma^2`, :math:`M_{\\sigma} = 2/\\sigma^2`
    * Categorical on log-probabilities :math:`\\ell`: :math:`M = \\mathrm{diag}(p) - p p^\\top`
    * Bernoulli on logits: :math:`M = p (1 - p)`

    :param distribution: the distribution at :math:`\\theta_{old}`
    :param vectors: one tensor per output, shaped like it
    :return: :math:`M u` for each output
    """
    if isinstance(distribution, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        variance = distribution.distribution.scale.detach() ** 2
        return [vectors[0] / variance, 2.0 * vectors[1] / variance]
    if isinstance(distribution, BernoulliDistribution):
        p = distribution.distribution.probs.detach()
        return [p * (1.0 - p) * vectors[0]]
    if isinstance(distribution, (CategoricalDistribution, MultiCategoricalDistribution)):
        categoricals = (
            distribution.distribution
            if isinstance(distribution, MultiCategoricalDistribution)
            else [distribution.distribution]
        )
        result = []
        for categorical, u in zip(categoricals, vectors, strict=True):
            p = categorical.probs.detach()
            result.append(p * u - p * (p * u).sum(dim=-1, keepdim=True))
        return result
    raise TypeError(f"TRPOCritic has no Fisher metric for {type(distribution).__name__}")


def flat_concat(tensors: Sequence[th.Tensor]) -> th.Tensor:
    """Concatenate tensors into one flat vector (the layout of :func:`unflatten_like`)."""
    return th.cat([t.reshape(-1) for t in tensors])


def unflatten_like(vector: th.Tensor, like: Sequence[th.Tensor]) -> list[th.Tensor]:
    """Split a flat vector into views shaped like ``like`` (inverse of :func:`flat_concat`)."""
    chunks = th.split(vector, [t.numel() for t in like])
    return [chunk.view_as(t) for chunk, t in zip(chunks, like, strict=True)]


def masked_mean(values: th.Tensor, mask: th.Tensor | None) -> th.Tensor:
    """
    The mean of ``values`` over the states that ``mask`` keeps: :math:`\\frac{1}{N} \\sum_{s: m_s} x_s`.

    Recurrent rollouts come as padded sequences (:class:`~sb3_trpo_critic.RecurrentTRPOCritic`); their
    padding is not data and never enters a mean.

    :param values: one value per state, shape ``(n_states,)``
    :param mask: boolean, shape ``(n_states,)``; ``None`` keeps every state (``values.mean()``)
    :return: a scalar tensor
    """
    return values.mean() if mask is None else values[mask].mean()


def make_fisher_vector_product(
    distribution: Distribution,
    params: Sequence[th.Tensor],
    damping: float,
    mask: th.Tensor | None = None,
) -> Callable[[th.Tensor], th.Tensor]:
    """
    Build :math:`v \\mapsto (F + \\lambda I) v` for the Fisher of the policy at :math:`\\theta_{old}`,
    in Gauss-Newton form:

    .. math:: F v = \\frac{1}{N} \\sum_s J_s^\\top M_s J_s v, \\qquad J_s = \\partial \\eta(s) / \\partial \\theta

    over the :math:`N` states that ``mask`` keeps (all of them without a mask),

    which is exactly the Hessian of the mean full KL at :math:`\\theta_{old}` (the residual
    term of the Hessian vanishes there, because the KL's gradient in :math:`\\eta` is zero).

    ``J v`` is computed by the "double-vjp" trick: ``w(u) = J^T u`` is built once with
    ``create_graph=True``; being linear in ``u``, its vector-Jacobian product with ``v`` is
    ``J v``. Each product then costs two backward passes over the retained graph of a single
    forward pass, over all actor parameters at once.

    :param distribution: the policy's distribution on the FVP states, computed from ``params``
        with the autograd graph kept
    :param params: the actor parameters :math:`\\theta`
    :param damping: :math:`\\lambda \\geq 0`
    :param mask: boolean, one per state: the states of the mean (the padding of recurrent sequences
        is left out); ``None``: every state
    :return: the damped Fisher-vector product on flat vectors
    """
    outputs = distribution_outputs(distribution)
    n_states = outputs[0].shape[0] if mask is None else int(mask.sum())
    # M_s is zero on the states the mask leaves out, so they add nothing to J^T M J v
    state_weight = None if mask is None else mask.to(outputs[0].dtype).unsqueeze(-1)
    dummies = [th.zeros_like(out, requires_grad=True) for out in outputs]
    jacobian_transpose_dummies = th.autograd.grad(
        outputs, params, grad_outputs=dummies, create_graph=True, allow_unused=True, materialize_grads=True
    )

    def fisher_vector_product(vector: th.Tensor) -> th.Tensor:
        # J v, by differentiating the linear map u -> J^T u
        jacobian_vector = th.autograd.grad(
            jacobian_transpose_dummies,
            dummies,
            grad_outputs=unflatten_like(vector, params),
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        # J^T M J v
        metric_jacobian_vector = fisher_metric(distribution, jacobian_vector)
        if state_weight is not None:
            metric_jacobian_vector = [state_weight * u for u in metric_jacobian_vector]
        product = th.autograd.grad(
            outputs,
            params,
            grad_outputs=metric_jacobian_vector,
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        return flat_concat(product) / n_states + damping * vector

    return fisher_vector_product


class CGResult(NamedTuple):
    """The result of :func:`conjugate_gradient`."""

    #: the approximate solution
    x: th.Tensor
    #: the number of matrix-vector products taken
    iterations: int
    #: the squared norm of the final residual ``b - A x``
    residual_squared_norm: float
    #: ``False`` when the curvature ``p^T A p`` was not positive or not finite
    converged_normally: bool
    #: :math:`x^\\top A x = x^\\top (b - r)`, from CG's own vectors: no further product needed
    x_a_x: float = 0.0


def conjugate_gradient(
    matrix_vector_product: Callable[[th.Tensor], th.Tensor],
    b: th.Tensor,
    max_iter: int,
    residual_tol: float = 1e-10,
) -> CGResult:
    """
    Solve :math:`A x = b` for a symmetric positive-definite :math:`A`, from :math:`x_0 = 0`.

    Stops after ``max_iter`` products, or when :math:`\\|r\\|^2 < \\text{residual\\_tol}`
    (the same residual test as ``sb3_contrib``'s solver), or on breakdown: when the curvature
    :math:`p^\\top A p` is not positive (``converged_normally=False``; ``x`` is then the last
    good iterate).

    :param matrix_vector_product: :math:`v \\mapsto A v`
    :param b: right-hand side (the policy gradient :math:`g`)
    :param max_iter: maximum number of products (>= 1)
    :param residual_tol: tolerance on the squared residual norm
    :return: the solution, the iterations taken, the final squared residual, the breakdown flag,
        and :math:`x^\\top A x`, computed as :math:`x^\\top (b - r)` with CG's residual
        :math:`r = b - A x` (exact up to rounding; it saves the product :math:`A x`)
    """
    x = th.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    residual_squared_norm = residual.dot(residual)
    if not residual_squared_norm >= residual_tol:  # also stops on NaN
        return CGResult(x, 0, float(residual_squared_norm), bool(th.isfinite(residual_squared_norm)))
    for iteration in range(1, max_iter + 1):
        product = matrix_vector_product(direction)
        curvature = direction.dot(product)
        if not curvature > 0:  # breakdown: A not positive definite along p, or NaN
            return CGResult(x, iteration, float(residual_squared_norm), False, float(x.dot(b - residual)))
        alpha = residual_squared_norm / curvature
        x = x + alpha * direction
        residual = residual - alpha * product
        new_residual_squared_norm = residual.dot(residual)
        if new_residual_squared_norm < residual_tol or iteration == max_iter:
            return CGResult(x, iteration, float(new_residual_squared_norm), True, float(x.dot(b - residual)))
        direction = residual + (new_residual_squared_norm / residual_squared_norm) * direction
        residual_squared_norm = new_residual_squared_norm
    raise AssertionError("unreachable: max_iter must be >= 1")


def trust_region_step_size(x_fisher_x: float, target_kl: float) -> float:
    """
    The scale :math:`\\beta` of the full step :math:`\\beta x` that reaches the boundary of the
    quadratic trust region :math:`\\tfrac12 \\beta^2 x^\\top (F + \\lambda I) x = \\delta`:

    .. math:: \\beta = \\sqrt{2 \\delta / x^\\top (F + \\lambda I) x}

    :param x_fisher_x: :math:`x^\\top (F + \\lambda I) x` (:attr:`CGResult.x_a_x`)
    :param target_kl: :math:`\\delta`
    :return: :math:`\\beta`; NaN when :math:`x^\\top F x \\leq 0` or not finite (the caller rejects the step)
    """
    if not (x_fisher_x > 0 and math.isfinite(x_fisher_x)):
        return math.nan
    return math.sqrt(2.0 * target_kl / x_fisher_x)


def set_parameters(params: Sequence[th.Tensor], origin: Sequence[th.Tensor], step: th.Tensor | None = None) -> None:
    """
    ``params <- origin + step`` in place (``step`` flat, in the layout of :func:`flat_concat`), or
    ``params <- origin`` bit for bit when ``step`` is ``None``.
    """
    if step is None:
        with th.no_grad():
            for param, start in zip(params, origin, strict=True):
                param.copy_(start)
        return
    for param, start, delta in zip(params, origin, unflatten_like(step, origin), strict=True):
        th.add(start, delta, out=param.data)


def is_acceptable_step(
    improvement: float, expected_improvement: float, kl: float, target_kl: float, accept_ratio: float
) -> bool:
    """
    The line search's acceptance test for one candidate: a real improvement of the surrogate,
    at least ``accept_ratio`` of the linear model's prediction, inside the trust region.

    :param improvement: :math:`L(\\theta) - L(\\theta_{old})`
    :param expected_improvement: :math:`g^\\top (\\theta - \\theta_{old})`
    :param kl: mean over states of :math:`KL(\\pi_{old} \\| \\pi_\\theta)` (full KL)
    :param target_kl: :math:`\\delta`
    :param accept_ratio: minimal ratio of actual to expected improvement
    :return: whether the candidate is accepted (never for non-finite values)
    """
    return (
        math.isfinite(improvement)
        and math.isfinite(kl)
        and improvement > 0.0
        and improvement >= accept_ratio * expected_improvement
        and kl <= target_kl
    )


class LineSearchResult(NamedTuple):
    """The result of :func:`backtracking_line_search`."""

    #: whether a candidate was accepted (otherwise the parameters are back at :math:`\\theta_{old}`)
    accepted: bool
    #: the number of candidates evaluated
    steps: int
    #: :math:`\\alpha^j` of the accepted candidate, 0 if none
    fraction: float
    #: the accepted candidate's :math:`L(\\theta) - L(\\theta_{old})`, 0 if none
    improvement: float
    #: the accepted candidate's mean full KL, 0 if none
    kl: float


def backtracking_line_search(
    params: Sequence[th.Tensor],
    full_step: th.Tensor,
    expected_improvement: float,
    evaluate: Callable[[], tuple[float, float]],
    target_kl: float,
    shrinking_factor: float,
    max_iter: int,
    accept_ratio: float = 0.0,
) -> LineSearchResult:
    """
    Backtracking line search along the full step :math:`\\beta x`: set the parameters to
    :math:`\\theta_{old} + \\alpha^j \\beta x` for :math:`j = 0, 1, \\dots`, ``max_iter - 1`` and keep the
    first candidate that :func:`is_acceptable_step` accepts.

    The parameters leave this function either at the accepted candidate or at :math:`\\theta_{old}`,
    restored bit for bit, also when ``evaluate`` raises (an exception, a ``KeyboardInterrupt``):
    never at a candidate that was not accepted.

    :param params: the actor parameters, at :math:`\\theta_{old}` on entry; changed in place
    :param full_step: :math:`\\beta x`, flat
    :param expected_improvement: :math:`g^\\top \\beta x`, the linear model's gain of the full step
    :param evaluate: returns ``(improvement, kl)`` of the parameters as they are now: the surrogate's
        :math:`L(\\theta) - L(\\theta_{old})` and the mean full KL from :math:`\\pi_{old}`
    :param target_kl: :math:`\\delta`
    :param shrinking_factor: :math:`\\alpha \\in (0, 1)`
    :param max_iter: the number of candidates at most (>= 1)
    :param accept_ratio: see :func:`is_acceptable_step`
    :return: whether a candidate was accepted, the candidates evaluated, and the accepted one's figures
    """
    theta_old = [param.detach().clone() for param in params]
    accepted = False
    steps = 0
    try:
        for j in range(max_iter):
            fraction = shrinking_factor**j
            set_parameters(params, theta_old, fraction * full_step)
            steps = j + 1
            improvement, kl = evaluate()
            if is_acceptable_step(improvement, fraction * expected_improvement, kl, target_kl, accept_ratio):
                accepted = True
                return LineSearchResult(True, steps, fraction, improvement, kl)
        return LineSearchResult(False, steps, 0.0, 0.0, 0.0)
    finally:
        if not accepted:
            set_parameters(params, theta_old)
