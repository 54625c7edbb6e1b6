"""Experiment (issue 11): does a K-FAC preconditioner cut TRPOCritic's CG iterations? (Early on, a lot; later, little.)

K-FAC (Martens & Grosse 2015) approximates each nn.Linear layer's block of the Fisher by A kron G, A = E[a a^T] of its
input (bias column appended), G = E[sum_k delta_k delta_k^T] with delta_k the gradient of mean_k / sigma_k at its
output (one backward pass per action dimension: the exact Fisher metric per state; only the expectation of the
Kronecker product is approximated); the output layer's block and log_std's (2 I) are exact. Damped with factored
Tikhonov damping, (A + pi sqrt(c lambda) I) kron (G + sqrt(c lambda) / pi I). On the rollouts of a training with the
update-cost benchmark's settings (HalfCheetah-v5, 2 x 1024 steps, rl-zoo3's TRPO settings, cg_damping 0.1), it runs
preconditioned CG against TRPOCritic's CG on the same damped Fisher-vector product, and prints, per update, the
iterations to the residual tolerance (1e-10, capped at 100), the relative error after 10 iterations against a
solution to 1e-16, and the time to build the preconditioner in Fisher-vector products.

    python benchmarks/experiments/kfac_cg.py [--updates 16] [--every 5]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch as th
from jacobi_cg import preconditioned_cg  # the script beside this one (its directory is on sys.path when run)
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.utils import configure_logger

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.update_cost import build, collect
from sb3_trpo_critic.trust_region import conjugate_gradient, flat_concat, make_fisher_vector_product, unflatten_like


class LinearCall(NamedTuple):
    """One call of an ``nn.Linear`` layer in the forward pass of the actor (recorded for :func:`make_kfac_preconditioner`)."""

    #: the layer
    layer: th.nn.Linear
    #: its input :math:`a`, one row per state
    inputs: th.Tensor
    #: its output :math:`s = W a + b`, still attached to the autograd graph
    outputs: th.Tensor


def make_kfac_preconditioner(
    distribution: Distribution,
    params: Sequence[th.Tensor],
    calls: Sequence[LinearCall],
    log_std: th.Tensor | None,
    damping: float,
) -> Callable[[th.Tensor], th.Tensor] | None:
    """
    Build :math:`v \\mapsto P^{-1} v`, a cheap approximation of :math:`(F + \\lambda I)^{-1} v` for a diagonal
    Gaussian policy whose actor is made of ``nn.Linear`` layers (K-FAC, Martens & Grosse 2015), to precondition
    :func:`conjugate_gradient`. The preconditioner changes how fast CG converges, not what it converges to:
    :math:`(F + \\lambda I) x = g` is solved as before.

    :math:`P` is block diagonal:

    * for each layer :math:`s = W a + b` (weight and bias together, :math:`\\bar a = [a, 1]`), the Fisher block
      :math:`\\mathbb{E}_s[\\bar a \\bar a^\\top \\otimes \\delta \\delta^\\top]` is approximated by
      :math:`A \\otimes G`, :math:`A = \\mathbb{E}_s[\\bar a \\bar a^\\top]`,
      :math:`G = \\mathbb{E}_s[\\sum_k \\delta_k \\delta_k^\\top]`, where
      :math:`\\delta_k = (\\partial \\mu_k / \\partial s) / \\sigma_k` (so that :math:`\\sum_k \\delta_k
      \\delta_k^\\top = J_s^\\top M J_s` with :math:`M_\\mu = 1/\\sigma^2`, one backward pass per action dimension).
      For the output layer, whose :math:`G = \\mathrm{diag}(1/\\sigma^2)` does not depend on the state, this is
      the exact block. Damped with factored Tikhonov damping,
      :math:`(A + \\pi \\sqrt{\\lambda} I) \\otimes (G + \\sqrt{\\lambda} / \\pi I)`,
      :math:`\\pi^2 = \\frac{\\mathrm{tr}(A) / \\dim A}{\\mathrm{tr}(G) / \\dim G}`; then
      :math:`P^{-1} \\mathrm{vec}(V) = \\mathrm{vec}(G_\\lambda^{-1} V A_\\lambda^{-1})` for the layer's
      gradient-shaped block :math:`V = [V_W, V_b]`;
    * for ``log_std`` (a state-independent standard deviation :math:`\\sigma = e^{\\log\\sigma}`), the exact block
      :math:`(2 + \\lambda) I`.

    :param distribution: the policy's distribution on the Fisher-vector-product states, at :math:`\\theta_{old}`
    :param params: the actor parameters, in the layout of the flat vectors
    :param calls: the ``nn.Linear`` calls of the forward pass that produced ``distribution``
    :param log_std: the parameter of the state-independent log standard deviation, or ``None``
    :param damping: :math:`\\lambda`
    :return: :math:`v \\mapsto P^{-1} v` on flat vectors; ``None`` where it does not apply (another
        distribution, no damping, an actor parameter that is neither ``log_std`` nor the weight or bias of
        exactly one recorded call, inputs that are not one row per state, or a singular factor): plain CG then
    """
    if type(distribution) is not DiagGaussianDistribution or not damping > 0:
        return None
    mean = distribution.distribution.loc
    std = distribution.distribution.scale.detach()
    n_states, _ = mean.shape  # one row per state
    index = parameter_index(params, calls, log_std)
    if index is None:
        return None
    if any(call.inputs.dim() != 2 or call.inputs.shape[0] != n_states for call in calls):
        return None
    g_sums = output_factor_sums(mean, std, calls)
    if g_sums is None:
        return None
    blocks = []
    for call, g_sum in zip(calls, g_sums, strict=True):
        inverses = damped_factor_inverses(call, g_sum, n_states, damping)
        if inverses is None:
            return None
        blocks.append(KFACBlock(call.layer, *inverses))

    def precondition(vector: th.Tensor) -> th.Tensor:
        return apply_kfac_blocks(vector, params, index, blocks, log_std, damping)

    return precondition


class KFACBlock(NamedTuple):
    """The damped Kronecker factors' inverses of one layer's block of :math:`P` (see :func:`make_kfac_preconditioner`)."""

    #: the layer
    layer: th.nn.Linear
    #: :math:`A_\lambda^{-1}`, of its input's side (bias column included)
    a_inverse: th.Tensor
    #: :math:`G_\lambda^{-1}`, of its output's side
    g_inverse: th.Tensor


def parameter_index(
    params: Sequence[th.Tensor], calls: Sequence[LinearCall], log_std: th.Tensor | None
) -> dict[int, int] | None:
    """
    The position of each actor parameter in the flat vectors, by the parameter's ``id``.

    :return: ``None`` unless the recorded calls are of distinct layers and the actor parameters are exactly their
        weights and biases and ``log_std`` (where given)
    """
    layers = [call.layer for call in calls]
    index = {id(param): i for i, param in enumerate(params)}
    covered = [id(call.layer.weight) for call in calls] + [
        id(call.layer.bias) for call in calls if call.layer.bias is not None
    ]
    if log_std is not None:
        covered.append(id(log_std))
    if len(set(layers)) != len(layers) or sorted(covered) != sorted(index):
        return None
    return index


def output_factor_sums(mean: th.Tensor, std: th.Tensor, calls: Sequence[LinearCall]) -> list[th.Tensor] | None:
    """
    :math:`\\sum_s \\sum_k \\delta_k \\delta_k^\\top` for each recorded call (:math:`n` times its :math:`G`), with one
    backward pass from the mean per action dimension :math:`k`.

    :param mean: the policy's mean, one row per state, still attached to the autograd graph of the calls' outputs
    :param std: its standard deviation, detached
    :param calls: the recorded ``nn.Linear`` calls
    :return: the sums, in the order of ``calls``; ``None`` if a layer does not reach the mean
    """
    outputs = [call.outputs for call in calls]
    g_factors = [th.zeros(out.shape[1], out.shape[1], dtype=mean.dtype, device=mean.device) for out in outputs]
    for k in range(mean.shape[1]):
        direction = th.zeros_like(mean)
        direction[:, k] = 1.0 / std[:, k]
        deltas = th.autograd.grad(mean, outputs, grad_outputs=direction, retain_graph=True, allow_unused=True)
        for g_factor, delta in zip(g_factors, deltas, strict=True):
            if delta is None:  # the layer does not reach the mean
                return None
            g_factor.addmm_(delta.T, delta)
    return g_factors


def damped_factor_inverses(
    call: LinearCall, g_sum: th.Tensor, n_states: int, damping: float
) -> tuple[th.Tensor, th.Tensor] | None:
    """
    The inverses of one layer's factors with factored Tikhonov damping, :math:`A_\\lambda = A + \\pi \\sqrt{\\lambda} I`
    and :math:`G_\\lambda = G + \\sqrt{\\lambda} / \\pi I` (see :func:`make_kfac_preconditioner`).

    :param call: the layer's recorded call (its inputs give :math:`A`, with a bias column if the layer has a bias)
    :param g_sum: :math:`n G`, from :func:`output_factor_sums`
    :param n_states: :math:`n`, the number of states
    :param damping: :math:`\\lambda`
    :return: :math:`(A_\\lambda^{-1}, G_\\lambda^{-1})`; ``None`` if :math:`\\pi` is not a positive finite number or a
        damped factor is singular
    """
    root_damping = math.sqrt(damping)
    a = call.inputs.detach()
    if call.layer.bias is not None:
        a = th.cat([a, th.ones_like(a[:, :1])], dim=1)
    a_factor = a.T @ a / n_states
    g_factor = g_sum / n_states
    pi = math.sqrt((float(a_factor.trace()) / a_factor.shape[0]) / (float(g_factor.trace()) / g_factor.shape[0]))
    if not (math.isfinite(pi) and pi > 0):
        return None
    a_inverse, a_info = th.linalg.inv_ex(
        a_factor + pi * root_damping * th.eye(a_factor.shape[0], dtype=a.dtype, device=a.device)
    )
    g_inverse, g_info = th.linalg.inv_ex(
        g_factor + root_damping / pi * th.eye(g_factor.shape[0], dtype=a.dtype, device=a.device)
    )
    if int(a_info) != 0 or int(g_info) != 0:
        return None
    return a_inverse, g_inverse


def apply_kfac_blocks(
    vector: th.Tensor,
    params: Sequence[th.Tensor],
    index: dict[int, int],
    blocks: Sequence[KFACBlock],
    log_std: th.Tensor | None,
    damping: float,
) -> th.Tensor:
    """
    :math:`P^{-1} v`: each layer's block :math:`V` becomes :math:`G_\\lambda^{-1} V A_\\lambda^{-1}`, ``log_std``'s
    part is divided by :math:`2 + \\lambda`.

    :param vector: :math:`v`, a flat vector in the layout of ``params``
    :param params: the actor parameters
    :param index: their positions, from :func:`parameter_index`
    :param blocks: the layers' inverted factors
    :param log_std: the parameter of the state-independent log standard deviation, or ``None``
    :param damping: :math:`\\lambda`
    :return: :math:`P^{-1} v`, flat
    """
    parts = unflatten_like(vector, params)
    result = list(parts)
    for layer, a_inverse, g_inverse in blocks:
        weight = index[id(layer.weight)]
        if layer.bias is None:
            result[weight] = g_inverse @ parts[weight] @ a_inverse
            continue
        bias = index[id(layer.bias)]
        block = g_inverse @ th.cat([parts[weight], parts[bias].unsqueeze(1)], dim=1) @ a_inverse
        result[weight], result[bias] = block[:, :-1], block[:, -1]
    if log_std is not None:
        result[index[id(log_std)]] = parts[index[id(log_std)]] / (2.0 + damping)
    return flat_concat(result)


@contextlib.contextmanager
def record_linear_calls(layers: list[th.nn.Linear]) -> Iterator[list[LinearCall]]:
    calls: list[LinearCall] = []
    handles = [layer.register_forward_hook(lambda layer, i, o: calls.append(LinearCall(layer, i[0], o))) for layer in layers]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=16)
    parser.add_argument("--every", type=int, default=5, help="measure every k-th update (and the first)")
    args = parser.parse_args()
    th.set_num_threads(1)
    model = build(TRPOCritic, "HalfCheetah-v5", seed=0)
    model._logger = configure_logger(0, None, "", False)
    actor = {id(p) for p in model._actor_params}
    layers = [m for m in model.policy.modules() if isinstance(m, th.nn.Linear) and id(m.weight) in actor]
    damping = model.cg_damping
    print("update | plain CG: its to 1e-10, error after 10 | K-FAC (c = 1, 3): its, error after 10 | build, in products")
    for update in range(args.updates):
        collect(model)
        if update % args.every == 0 or update == 1:
            rollout = next(model.rollout_buffer.get(batch_size=None))
            params = model._actor_params
            advantages = (rollout.advantages - rollout.advantages.mean()) / (rollout.advantages.std() + 1e-8)
            with record_linear_calls(layers) as calls:
                distribution = model._action_distribution(rollout)
            surrogate = model._surrogate(distribution, rollout.actions, rollout.old_log_prob, advantages, None)
            g = flat_concat(th.autograd.grad(surrogate, params, retain_graph=True))
            product = make_fisher_vector_product(distribution, params, damping)
            exact = conjugate_gradient(product, g, 300, 1e-16).x

            def error(x: th.Tensor, exact: th.Tensor = exact) -> float:
                return float((x - exact).norm() / exact.norm())

            plain = conjugate_gradient(product, g, 100, 1e-10)
            row = [f"{update:6d} | {plain.iterations:3d}, {error(conjugate_gradient(product, g, 10, 0.0).x):.1e}"]
            for c in (1.0, 3.0):
                start = time.perf_counter()
                precondition = make_kfac_preconditioner(distribution, params, calls, model.policy.log_std, c * damping)
                build_seconds = time.perf_counter() - start
                assert precondition is not None
                _, iterations = preconditioned_cg(product, g, precondition, 100, 1e-10)
                x10, _ = preconditioned_cg(product, g, precondition, 10, 0.0)
                row.append(f"{iterations:3d}, {error(x10):.1e}")
            start = time.perf_counter()
            for _ in range(5):
                product(g)
            product_seconds = (time.perf_counter() - start) / 5
            print(" | ".join(row), f"| {build_seconds / product_seconds:.1f}", flush=True)
        model.train()


if __name__ == "__main__":
    main()
