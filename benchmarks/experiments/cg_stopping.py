"""Experiment (issue 11): how many CG products does TRPOCritic's step need, and what does stopping earlier change?

At identical hyperparameters (the update-cost benchmark: HalfCheetah-v5, 2 x 1024 steps, rl-zoo3's TRPO settings,
cg_damping 0.1, target_kl 0.01), CG runs until its squared residual falls below cg_residual_tol=1e-10 (sb3_contrib's
test). This script solves the same systems with a fixed number of products k and compares each trust-region step
beta_k x_k (beta_k = sqrt(2 delta / x_k^T A x_k)) with the step of a 60-product solve, in the Fisher norm that the
trust region measures: ||beta_k x_k - beta* x*||_A / ||beta* x*||_A. It also prints the products the default
tolerance takes and the relative squared residual ||r_k||^2 / ||g||^2 at each k.

    python benchmarks/experiments/cg_stopping.py --rollouts 10
"""

import argparse
import math
import statistics

import torch as th

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.update_cost import build, collect
from sb3_trpo_critic.trust_region import conjugate_gradient, flat_concat, make_fisher_vector_product

PRODUCTS = (5, 8, 10, 12, 15, 18, 20, 25)
REFERENCE_PRODUCTS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=10)
    parser.add_argument("--env", default="HalfCheetah-v5")
    args = parser.parse_args()
    th.set_num_threads(1)
    model = build(TRPOCritic, args.env, 0)
    errors: dict[int, list[float]] = {k: [] for k in PRODUCTS}
    residuals: dict[int, list[float]] = {k: [] for k in PRODUCTS}
    default_iterations = []
    for _ in range(args.rollouts):
        collect(model)
        model.policy.set_training_mode(True)
        rollout = next(model.rollout_buffer.get(None))
        advantages = (rollout.advantages - rollout.advantages.mean()) / (rollout.advantages.std() + 1e-8)
        distribution = model._distribution(rollout.observations)
        surrogate = model._surrogate(distribution, rollout.actions, rollout.old_log_prob, advantages)
        g = flat_concat(th.autograd.grad(surrogate, model._actor_params, retain_graph=True))
        product = make_fisher_vector_product(distribution, model._actor_params, model.cg_damping)

        def step(k: int, product=product, g=g) -> tuple[th.Tensor, float]:
            cg = conjugate_gradient(product, g, k, residual_tol=0.0)
            return cg.x * math.sqrt(2.0 * model.target_kl / cg.x_a_x), cg.residual_squared_norm

        reference, _ = step(REFERENCE_PRODUCTS)
        reference_norm = float(reference.dot(product(reference))) ** 0.5
        for k in PRODUCTS:
            candidate, residual = step(k)
            difference = candidate - reference
            errors[k].append(float(difference.dot(product(difference))) ** 0.5 / reference_norm)
            residuals[k].append(residual / float(g.dot(g)))
        default_iterations.append(conjugate_gradient(product, g, REFERENCE_PRODUCTS, model.cg_residual_tol).iterations)
        model._fit_critic(rollout)  # the next rollout comes from a trained critic, as in training

    print(f"env={args.env} rollouts={args.rollouts} cg_damping={model.cg_damping} target_kl={model.target_kl}")
    print(f"products to cg_residual_tol={model.cg_residual_tol:g}: {default_iterations}")
    print(f"{'products':>8s} {'median step error (F-norm)':>27s} {'max':>9s} {'median |r|^2/|g|^2':>19s}")
    for k in PRODUCTS:
        print(f"{k:8d} {statistics.median(errors[k]):27.1e} {max(errors[k]):9.1e} {statistics.median(residuals[k]):19.1e}")


if __name__ == "__main__":
    main()
