"""Experiment (issue 11): would any block-diagonal preconditioner cut CG's products later in training? (No.)

Trains TRPOCritic with the update-cost settings (HalfCheetah-v5, 2 x 1024 steps, rl-zoo3's TRPO arguments,
cg_damping 0.1, 64x64 tanh) and, at the chosen updates, builds the damped Fisher F + lambda I explicitly (one
Fisher-vector product per actor parameter, 5708 of them) and the policy gradient g. On that exact system (float64)
it runs CG from x = 0 to TRPOCritic's residual test (||r||^2 < 1e-10) without a preconditioner, with the exact
diagonal (Jacobi), and with the exact block of each parameter tensor (the inverse of F's block for log_std, each
weight matrix and each bias: the best any per-layer block-diagonal preconditioner, K-FAC included, can do), and
prints the products needed and the error of x after 12 and 25 products (relative 2-norm, and in the F-norm).

    python benchmarks/experiments/block_cg.py --updates 1 10 50 150

About 13 s per captured update to build F, plus the training (150 updates: about 3 minutes on one thread).
"""

import argparse
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch as th
from jacobi_cg import preconditioned_cg  # the script beside this one (its directory is on sys.path when run)

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.update_cost import build
from sb3_trpo_critic.trust_region import CGResult

Preconditioner = Callable[[th.Tensor], th.Tensor]


class CapturingTRPOCritic(TRPOCritic):
    """
    TRPOCritic that keeps the linear system of the chosen updates (1-based): the damped Fisher F + lambda I, built from
    one Fisher-vector product per actor parameter, and the policy gradient g, both in float64. The solve is unchanged.
    """

    def __init__(self, *args: Any, capture: Iterable[int] = (), **kwargs: Any) -> None:
        self.capture = set(capture)
        self.solves = 0
        self.systems: list[tuple[int, th.Tensor, th.Tensor]] = []
        super().__init__(*args, **kwargs)

    def _solve(self, fisher_vector_product: Callable[[th.Tensor], th.Tensor], gradient: th.Tensor) -> CGResult:
        self.solves += 1
        if self.solves in self.capture:
            columns = [fisher_vector_product(e) for e in th.eye(gradient.numel())]
            self.systems.append((self.solves, th.stack(columns).double(), gradient.double().clone()))
        return super()._solve(fisher_vector_product, gradient)


def block_preconditioner(matrix: th.Tensor, sizes: list[int]) -> Preconditioner:
    """The exact inverse of each diagonal block of ``matrix`` (one block per parameter tensor)."""
    bounds = th.cumsum(th.tensor([0, *sizes]), 0).tolist()
    blocks = [(slice(a, b), th.linalg.inv(matrix[a:b, a:b])) for a, b in itertools.pairwise(bounds)]

    def precondition(r: th.Tensor) -> th.Tensor:
        return th.cat([inverse @ r[block] for block, inverse in blocks])

    return precondition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--updates", type=int, nargs="+", default=[1, 10, 50, 150])
    args = parser.parse_args()
    th.set_num_threads(1)

    model = build(CapturingTRPOCritic, args.env, seed=0, extra={"capture": args.updates})
    model.learn(max(args.updates) * model.n_steps * model.n_envs)
    sizes = [p.numel() for p in model._actor_params]

    print(f"{args.env}, update-cost settings, seed 0; actor parameters {sum(sizes)}; residual test ||r||^2 < 1e-10")
    print(
        f"{'update':>6s} {'cond':>6s} {'preconditioner':>15s} {'products':>9s} {'err@12':>8s} {'err@25':>8s}"
        f" {'F-err@12':>9s} {'F-err@25':>9s}"
    )
    for update, matrix, g in model.systems:
        matrix = (matrix + matrix.T) / 2
        exact = th.linalg.solve(matrix, g)
        eigenvalues = th.linalg.eigvalsh(matrix)
        diagonal = th.diag(matrix)
        preconditioners: dict[str, Preconditioner] = {
            "none": lambda r: r,
            "Jacobi": lambda r, diagonal=diagonal: r / diagonal,
            "exact blocks": block_preconditioner(matrix, sizes),
        }
        for name, precondition in preconditioners.items():
            _, products = preconditioned_cg(matrix.__matmul__, g, precondition, 500, 1e-10)
            errors, f_errors = [], []
            for k in (12, 25):
                x, _ = preconditioned_cg(matrix.__matmul__, g, precondition, k, 1e-10)
                e = x - exact
                errors.append(float(th.linalg.vector_norm(e) / th.linalg.vector_norm(exact)))
                f_errors.append(float((e @ matrix @ e) / (exact @ matrix @ exact)) ** 0.5)
            print(
                f"{update:6d} {float(eigenvalues[-1] / eigenvalues[0]):6.0f} {name:>15s} {products:9d}"
                f" {errors[0]:8.1e} {errors[1]:8.1e} {f_errors[0]:9.1e} {f_errors[1]:9.1e}"
            )


if __name__ == "__main__":
    main()
