"""Experiment (issue 11): does an exact Jacobi preconditioner cut TRPOCritic's CG iterations? (It does not.)

On rollouts of the update-cost benchmark (HalfCheetah-v5, 2 x 1024 steps, rl-zoo3's TRPO settings, cg_damping 0.1)
it builds the exact diagonal of F + lambda I (per-sample Jacobians of the Gaussian mean w.r.t. the mean network's
parameters, by torch.func; the log_std block is exactly 2) and runs preconditioned CG against TRPOCritic's CG on
the same damped Fisher-vector product, printing iterations to the residual tolerance and the A-norm error.

    python benchmarks/experiments/jacobi_cg.py
"""

import time

import torch as th
from torch.func import functional_call, jacrev, vmap

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.update_cost import build, collect
from sb3_trpo_critic.trust_region import conjugate_gradient, flat_concat, make_fisher_vector_product


def preconditioned_cg(product, b, precondition, max_iter, tol):
    """Preconditioned CG from x = 0 (``precondition``: r -> P^-1 r), with the residual test of TRPOCritic's CG."""
    x, r = th.zeros_like(b), b.clone()
    z = precondition(r)
    p, rz = z.clone(), r.dot(z)
    for iteration in range(1, max_iter + 1):
        ap = product(p)
        alpha = rz / p.dot(ap)
        x, r = x + alpha * p, r - alpha * ap
        if r.dot(r) < tol:
            return x, iteration
        z = precondition(r)
        rz, rz_old = r.dot(z), rz
        p = z + (rz / rz_old) * p
    return x, max_iter


def a_norm_error(product, x, exact):
    """||x - x*||_A^2 / ||x*||_A^2."""
    e = x - exact
    return float(e.dot(product(e)) / exact.dot(product(exact)))


def fisher_diagonal(model, obs, distribution, damping):
    """Exact diag(F) + damping for an MlpPolicy with a Gaussian head, in the order of the actor's parameters."""
    policy = model.policy
    names = {param: name for name, param in policy.named_parameters()}
    mean_params = {names[p]: p.detach() for p in model._actor_params if names[p] != "log_std"}

    def mean(params, x):
        def sub(prefix):
            return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}

        latent = functional_call(policy.mlp_extractor.policy_net, sub("mlp_extractor.policy_net."), (x,))
        return functional_call(policy.action_net, sub("action_net."), (latent,))

    jacobians = vmap(jacrev(mean), in_dims=(None, 0))(mean_params, obs.float())
    variance = distribution.distribution.scale.detach() ** 2
    diagonal = {name: ((j.flatten(2) ** 2) / variance[:, :, None]).sum(1).mean(0) for name, j in jacobians.items()}
    diagonal["log_std"] = th.full_like(policy.log_std, 2.0)  # sigma^2 * 2 / sigma^2
    return th.cat([diagonal[names[p]].reshape(-1) for p in model._actor_params]) + damping


def main() -> None:
    th.set_num_threads(1)
    model = build(TRPOCritic, "HalfCheetah-v5", 0)
    damping, tol = model.cg_damping, model.cg_residual_tol
    for repetition in range(3):
        collect(model)
        rollout = next(model.rollout_buffer.get(None))
        distribution = model._distribution(rollout.observations)
        advantages = (rollout.advantages - rollout.advantages.mean()) / rollout.advantages.std()
        surrogate = model._surrogate(distribution, rollout.actions, rollout.old_log_prob, advantages)
        g = flat_concat(th.autograd.grad(surrogate, model._actor_params, retain_graph=True))
        product = make_fisher_vector_product(distribution, model._actor_params, damping)
        start = time.perf_counter()
        inverse_diagonal = 1.0 / fisher_diagonal(model, rollout.observations, distribution, damping)
        diagonal_seconds = time.perf_counter() - start

        def jacobi(r: th.Tensor, inverse_diagonal: th.Tensor = inverse_diagonal) -> th.Tensor:
            return inverse_diagonal * r

        exact, _ = preconditioned_cg(product, g, jacobi, 300, 1e-20)

        cg = conjugate_gradient(product, g, 60, tol)
        _, pcg_iterations = preconditioned_cg(product, g, jacobi, 60, tol)
        cg10 = conjugate_gradient(product, g, 10, 0.0).x
        pcg10, _ = preconditioned_cg(product, g, jacobi, 10, 0.0)
        print(
            f"rollout {repetition}: iterations to |r|^2 < {tol:g}: CG {cg.iterations}, Jacobi-PCG {pcg_iterations}; "
            f"A-norm error after 10: CG {a_norm_error(product, cg10, exact):.2e}, "
            f"PCG {a_norm_error(product, pcg10, exact):.2e}; "
            f"diagonal built in {diagonal_seconds:.2f} s"
        )
        model.train()


if __name__ == "__main__":
    main()
