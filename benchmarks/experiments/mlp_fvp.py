"""Experiment (issue 11): how cheap can one Fisher-vector product get, and what would that buy the policy step?

TRPOCritic's product (``make_fisher_vector_product``: J v by the double-vjp trick, then J^T M J v, two backward
passes through autograd) against the same product written out by hand for an MLP actor with a diagonal Gaussian
(forward tangents through each Linear and tanh, the Gaussian metric 1/sigma^2, a hand backward pass: four matrix
products per hidden layer), and against the sum of those matrix products alone (the floor of any exact product
over all states). Both products agree to float32 rounding (printed).

    python benchmarks/experiments/mlp_fvp.py micro
    python benchmarks/experiments/mlp_fvp.py update-cost --env HalfCheetah-v5 --repetitions 15 --threads 1

``micro``: per-product times on 2048 states (the update-cost rollout: 2 x 1024 steps, 17 -> 64 -> 64 -> 6, tanh).
``update-cost``: the update-cost benchmark (its arguments), with TRPOCritic replaced by a subclass whose
Fisher-vector product (``_fisher_vector_product``) is the hand product, for MLP actors with tanh activations only
(the benchmark's ``MlpPolicy``); compare with the plain benchmark run right before or after it.
"""

import sys
import time
from collections.abc import Callable

import torch as th
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks import update_cost
from sb3_trpo_critic.trust_region import make_fisher_vector_product


def hand_fisher_vector_product(
    features: th.Tensor, hidden: list[nn.Linear], head: nn.Linear, log_std: th.Tensor, damping: float
) -> Callable[[th.Tensor], th.Tensor]:
    """(F + damping I) v for mean = head(tanh(...tanh(hidden[0](features)))), std = exp(log_std), params in the
    order [log_std, W, b of each hidden layer, W, b of head] (TRPOCritic's actor parameter order)."""
    linears = [*hidden, head]
    weights = [layer.weight.detach() for layer in linears]
    sizes = [log_std.numel()] + [n for layer in linears for n in (layer.weight.numel(), layer.bias.numel())]
    with th.no_grad():
        inputs, slopes = [features], []  # the input of each Linear; tanh' = 1 - tanh^2 after each hidden one
        for layer in hidden:
            activation = th.tanh(layer(inputs[-1]))
            inputs.append(activation)
            slopes.append(1 - activation * activation)
        metric = th.exp(-2 * log_std.detach()) / features.shape[0]  # M_mu / N

    @th.no_grad()
    def product(vector: th.Tensor) -> th.Tensor:
        chunks = th.split(vector, sizes)
        v_weights, v_biases = chunks[1::2], chunks[2::2]
        # J v: forward tangent of the mean
        tangent = th.addmm(v_biases[0], inputs[0], v_weights[0].view_as(weights[0]).T)
        for i in range(1, len(linears)):
            tangent = th.addmm(v_biases[i], inputs[i], v_weights[i].view_as(weights[i]).T).addmm_(
                slopes[i - 1] * tangent, weights[i].T
            )
        # J^T M J v: backward pass of M J v
        u = tangent * metric
        grads: list[th.Tensor] = []
        for i in range(len(linears) - 1, -1, -1):
            grads = [(u.T @ inputs[i]).reshape(-1), u.sum(0), *grads]
            if i > 0:
                u = (u @ weights[i]) * slopes[i - 1]
        return th.cat([2.0 * chunks[0], *grads]) + damping * vector  # log_std block: exactly 2 I

    return product


def timed(function: Callable[[], object], repetitions: int = 200) -> float:
    for _ in range(10):
        function()
    start = time.perf_counter()
    for _ in range(repetitions):
        function()
    return (time.perf_counter() - start) / repetitions * 1e3


def micro() -> None:
    th.set_num_threads(1)
    th.manual_seed(0)
    n, obs_dim, width, action_dim = 2048, 17, 64, 6
    hidden = [nn.Linear(obs_dim, width), nn.Linear(width, width)]
    head, log_std = nn.Linear(width, action_dim), nn.Parameter(th.zeros(action_dim))
    params = [log_std, *[p for layer in [*hidden, head] for p in layer.parameters()]]
    obs = th.randn(n, obs_dim)
    mean = head(th.tanh(hidden[1](th.tanh(hidden[0](obs)))))
    distribution = DiagGaussianDistribution(action_dim).proba_distribution(mean, log_std)
    autograd_product = make_fisher_vector_product(distribution, params, 0.1)
    hand_product = hand_fisher_vector_product(obs, hidden, head, log_std, 0.1)
    vector = th.randn(sum(p.numel() for p in params))
    with th.no_grad():
        reference = autograd_product(vector)
        difference = float((reference - hand_product(vector)).abs().max())
        scale = float(reference.abs().max())
    a1, a2, g = th.randn(n, width), th.randn(n, width), th.randn(n, action_dim)
    w = [layer.weight.detach() for layer in [*hidden, head]]
    matrix_products = {  # the matrix products of one hand product, shapes as in it
        "J v": lambda: (obs @ w[0].T, a1 @ w[1].T, a1 @ w[1].T, a2 @ w[2].T, a2 @ w[2].T),
        "J^T u": lambda: (g.T @ a2, g @ w[2], a1.T @ a2, a2 @ w[1], a1.T @ obs),
    }
    floor = sum(timed(f) for f in matrix_products.values())
    autograd_ms, hand_ms = timed(lambda: autograd_product(vector)), timed(lambda: hand_product(vector))
    print(f"torch {th.__version__}, 1 thread, {n} states, {obs_dim}->{width}->{width}->{action_dim} tanh")
    print(f"max |autograd - hand| = {difference:.2e} (products up to {scale:.2f})")
    print(f"TRPOCritic's product (autograd):  {autograd_ms:.3f} ms")
    print(f"hand-written MLP product:         {hand_ms:.3f} ms ({autograd_ms / hand_ms:.2f}x faster)")
    print(f"its matrix products alone:        {floor:.3f} ms (the floor of an exact product on all states)")


class HandProductTRPOCritic(TRPOCritic):
    """TRPOCritic with the hand-written product (MLP actor, tanh hidden layers, diagonal Gaussian, every state)."""

    def _policy_step(self, rollout):
        self._step_observations = rollout.observations  # the states of the product (sub_sampling_factor 1)
        return super()._policy_step(rollout)

    def _fisher_vector_product(self, distribution: Distribution, mask: th.Tensor | None) -> Callable[[th.Tensor], th.Tensor]:
        policy = self.policy
        modules = list(policy.mlp_extractor.policy_net)
        assert all(isinstance(m, (nn.Linear, nn.Tanh)) for m in modules) and mask is None and self.sub_sampling_factor == 1
        features = policy.features_extractor(preprocess_obs(self._step_observations, policy.observation_space))
        hidden = [m for m in modules if isinstance(m, nn.Linear)]
        return hand_fisher_vector_product(features, hidden, policy.action_net, policy.log_std, self.cg_damping)


def hand_product_update_cost(argv: list[str]) -> None:
    """update_cost.main() with :class:`HandProductTRPOCritic` in place of TRPOCritic."""
    update_cost.main(argv, trpo_critic_class=HandProductTRPOCritic)


if __name__ == "__main__":
    command, *arguments = sys.argv[1:] or ["micro"]
    micro() if command == "micro" else hand_product_update_cost(arguments)
