"""Time one train() of TRPOCritic against sb3_contrib.TRPO, with identical hyperparameters.

Both algorithms are built with the arguments of sb3_contrib.TRPO's rl-zoo3 entry for the environment
(``load_zoo_hyperparameters("trpo", env)``), at sb3_contrib.TRPO's default trust region ``target_kl``
0.01, given to both explicitly (TRPOCritic's own default differs): for HalfCheetah-v5, rl-zoo3's
HalfCheetah-v4 entry (n_envs 2, n_steps 1024, batch_size 128, cg_max_steps 25, cg_damping 0.1,
n_critic_updates 20, learning_rate 1e-3, VecNormalize), whose own ``target_kl: 0.04`` takes
``--hyperparams target_kl:0.04``. ``--hyperparams KEY:VALUE`` replaces keys of the entry for both. Each
repetition collects a fresh rollout for each algorithm and times its train(), interleaved (A, B, A, B,
...) so that machine noise hits both alike. Reported: medians, and the ratios TRPOCritic /
sb3_contrib.TRPO for the whole train() and for the policy step alone (everything but the critic epochs).

    python -m sb3_trpo_critic.benchmarks.update_cost --env HalfCheetah-v5 --repetitions 30
    python -m sb3_trpo_critic.benchmarks.update_cost --env HalfCheetah-v5 --repetitions 30 --equivalent-trust-region

On a GPU: ``--device cuda``; a large rollout: ``--n-envs 64 --n-steps 256``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import TRPOCritic, from_sb3_contrib
from sb3_trpo_critic.extras import requires_extra
from sb3_trpo_critic.translate import SB3_CONTRIB_DEFAULTS

with requires_extra("benchmarks", __name__):  # without the extra: one line naming it, exit 2 (issue 25)
    from sb3_trpo_critic.benchmarks.run import hyperparam_argument
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters

#: The rl-zoo3 algorithm whose entries both models are built from: sb3_contrib.TRPO's (``trpo.yml``).
ZOO_ALGO = "trpo"
#: The trust region of both models, over the entry's: sb3_contrib.TRPO's default, at which every update-cost figure
#: in the docs was measured (rl-zoo3's HalfCheetah-v4 entry has ``target_kl: 0.04``; ``--hyperparams`` replaces it).
TARGET_KL = SB3_CONTRIB_DEFAULTS["target_kl"]


class CriticClock:
    """Wraps a rollout buffer's ``get``: the first minibatch request marks the start of the critic epochs."""

    def __init__(self, buffer: Any):
        self.buffer = buffer
        self.original_get = buffer.get
        self.critic_start: float | None = None
        buffer.get = self.get

    def get(self, batch_size: int | None = None):
        if batch_size is not None and self.critic_start is None:
            self.critic_start = time.perf_counter()
        return self.original_get(batch_size)


def build(
    algo: type,
    env_id: str,
    seed: int,
    same_step: bool = False,
    device: str = "cpu",
    n_envs: int | None = None,
    n_steps: int | None = None,
    extra: dict[str, Any] | None = None,
    hyperparams: Sequence[tuple[str, Any]] = (),
):
    """
    ``algo`` (``sb3_contrib.TRPO``, :class:`~sb3_trpo_critic.TRPOCritic` or a subclass) with the arguments of
    sb3_contrib.TRPO's zoo entry for ``env_id`` (``load_zoo_hyperparameters("trpo", env_id)``) and ``target_kl``
    :data:`TARGET_KL`, on ``make_vec_env(env_id)`` in the entry's ``VecNormalize``.

    ``same_step``: TRPOCritic with sb3_contrib.TRPO's step, translated by ``from_sb3_contrib(same_step=True)``.
    ``n_envs``, ``n_steps``: the rollout's shape (default: the entry's).
    ``extra``: further constructor arguments of ``algo`` (e.g. TRPOCritic's ``cg_residual_tol``).
    ``hyperparams``: (key, value) pairs that replace keys of the entry, ``target_kl`` included (``--hyperparams``).
    """
    zoo = load_zoo_hyperparameters(ZOO_ALGO, env_id, {"target_kl": TARGET_KL, **dict(hyperparams)})
    env = make_vec_env(env_id, n_envs=zoo.n_envs if n_envs is None else n_envs, seed=seed, env_kwargs=zoo.env_kwargs)
    if zoo.normalize:
        env = VecNormalize(env, **zoo.normalize_kwargs)
    hyperparameters = dict(zoo.model_kwargs)
    if n_steps is not None:
        hyperparameters["n_steps"] = n_steps
    if same_step:
        hyperparameters = from_sb3_contrib(hyperparameters, env.action_space, same_step=True)
    return algo(zoo.policy, env, seed=seed, device=device, **hyperparameters, **(extra or {}))


def synchronize(model) -> None:
    """Wait for queued GPU work, so that a timer measures it (a no-op on CPU)."""
    if model.device.type == "cuda":
        th.cuda.synchronize(model.device)


def collect(model) -> None:
    _, callback = model._setup_learn(model.n_steps * model.n_envs, callback=None, reset_num_timesteps=False)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def time_train(model) -> tuple[float, float, int]:
    """Seconds of the whole train() and of its policy step (all but the critic epochs), and CG iterations."""
    collect(model)
    synchronize(model)
    if isinstance(model, TRPOCritic):
        start = time.perf_counter()
        model.train()
        synchronize(model)
        total = time.perf_counter() - start
        assert model.last_policy_step is not None
        return total, total - model.logger.name_to_value["train/critic_time"], model.last_policy_step.cg_iterations
    # sb3_contrib.TRPO: count its Hessian-vector products (CG's, plus one for its random start and
    # one for x^T H x), and find where its critic epochs start.
    products = []
    original_product = model.hessian_vector_product

    def counting_product(*args, **kwargs):
        products.append(1)
        return original_product(*args, **kwargs)

    model.hessian_vector_product = counting_product
    clock = CriticClock(model.rollout_buffer)
    start = time.perf_counter()
    model.train()
    synchronize(model)
    end = time.perf_counter()
    model.rollout_buffer.get = clock.original_get
    del model.hessian_vector_product
    assert clock.critic_start is not None
    return end - start, clock.critic_start - start, len(products) - 2


def main(argv: Sequence[str] | None = None, *, trpo_critic_class: type[TRPOCritic] = TRPOCritic) -> None:
    """
    The command line.

    :param argv: The arguments; default: ``sys.argv[1:]``
    :param trpo_critic_class: The class of the TRPOCritic model (a subclass with another Fisher-vector product or
        solver, as the experiments in ``benchmarks/experiments/`` build); built with the same arguments
    """
    parser = argparse.ArgumentParser(
        prog="python -m sb3_trpo_critic.benchmarks.update_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of both models, e.g. cuda")
    parser.add_argument("--n-envs", type=int, default=None, help="environments per rollout (default: the entry's)")
    parser.add_argument("--n-steps", type=int, default=None, help="steps per environment (default: the entry's)")
    parser.add_argument(
        "--hyperparams",
        nargs="+",
        type=hyperparam_argument,
        default=[],
        metavar="KEY:VALUE",
        help="replace keys of the zoo entry, for both algorithms (as rl-zoo3's --hyperparams), e.g. target_kl:0.04",
    )
    parser.add_argument(
        "--equivalent-trust-region",
        action="store_true",
        help="give TRPOCritic target_kl and cg_damping times the action dimension: sb3_contrib.TRPO's KL and "
        "Fisher are averaged over action dimensions, so both then solve the same system and take the same step",
    )
    parser.add_argument(
        "--cg-residual-tol",
        type=float,
        default=None,
        help="TRPOCritic's cg_residual_tol (default: its own default, 1e-10, sb3_contrib's test): what a looser "
        "CG stopping rule would save",
    )
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)

    shape: dict[str, Any] = dict(device=args.device, n_envs=args.n_envs, n_steps=args.n_steps, hyperparams=args.hyperparams)
    models = {
        "TRPOCritic": build(
            trpo_critic_class,
            args.env,
            args.seed,
            same_step=args.equivalent_trust_region,
            extra=None if args.cg_residual_tol is None else {"cg_residual_tol": args.cg_residual_tol},
            **shape,
        ),
        "sb3_contrib.TRPO": build(TRPO, args.env, args.seed, **shape),
    }
    times: dict[str, dict[str, list[float]]] = {name: {"train": [], "policy": [], "cg": []} for name in models}
    for repetition in range(args.warmup + args.repetitions):
        for name, model in models.items():
            total, policy, cg_iterations = time_train(model)
            if repetition >= args.warmup:
                times[name]["train"].append(total)
                times[name]["policy"].append(policy)
                times[name]["cg"].append(cg_iterations)

    ours_model, theirs_model = models["TRPOCritic"], models["sb3_contrib.TRPO"]
    print(
        f"env={args.env} repetitions={args.repetitions} threads={args.threads} torch={th.__version__} "
        f"python={platform.python_version()} cpu={platform.processor() or platform.machine()} "
        f"equivalent_trust_region={args.equivalent_trust_region} device={args.device} "
        f"rollout={ours_model.n_envs}x{ours_model.n_steps} target_kl={ours_model.target_kl:g}/{theirs_model.target_kl:g} "
        f"trpo_critic_cg_residual_tol={ours_model.cg_residual_tol:g}"
        + (f" hyperparams={','.join(f'{key}:{value!r}' for key, value in args.hyperparams)}" if args.hyperparams else "")
        + ("" if trpo_critic_class is TRPOCritic else f" trpo_critic_class={trpo_critic_class.__qualname__}")
    )
    print(f"{'':18s} {'train() median':>15s} {'policy step median':>19s} {'critic epochs median':>21s} {'CG its':>7s}")
    medians = {}
    for name, measured in times.items():
        train, policy = statistics.median(measured["train"]), statistics.median(measured["policy"])
        critic = statistics.median(t - p for t, p in zip(measured["train"], measured["policy"], strict=True))
        medians[name] = (train, policy)
        cg = statistics.mean(measured["cg"])
        print(f"{name:18s} {train * 1e3:12.1f} ms {policy * 1e3:16.1f} ms {critic * 1e3:18.1f} ms {cg:7.1f}")
    ours, theirs = medians["TRPOCritic"], medians["sb3_contrib.TRPO"]
    ratios = [o / t for o, t in zip(times["TRPOCritic"]["train"], times["sb3_contrib.TRPO"]["train"], strict=True)]
    policy_ratios = [o / t for o, t in zip(times["TRPOCritic"]["policy"], times["sb3_contrib.TRPO"]["policy"], strict=True)]
    print(
        f"ratio TRPOCritic / sb3_contrib.TRPO, whole train(): {ours[0] / theirs[0]:.3f} "
        f"(median of paired ratios {statistics.median(ratios):.3f})"
    )
    print(
        f"ratio TRPOCritic / sb3_contrib.TRPO, policy step:   {ours[1] / theirs[1]:.3f} "
        f"(median of paired ratios {statistics.median(policy_ratios):.3f})"
    )


if __name__ == "__main__":
    with requires_extra("benchmarks", __name__):  # rl-zoo3's modules imported when used
        main()
