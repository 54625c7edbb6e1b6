"""Time one train() of TRPOCritic against sb3_contrib.TRPO, with identical hyperparameters.

Both algorithms are built with rl-zoo3's HalfCheetah settings (n_envs 2, n_steps 1024,
batch_size 128, cg_max_steps 25, cg_damping 0.1, n_critic_updates 20, VecNormalize). Each
repetition collects a fresh rollout for each algorithm and times its train(), interleaved
(A, B, A, B, ...) so that machine noise hits both alike. Reported: medians, and the ratios
TRPOCritic / sb3_contrib.TRPO for the whole train() and for the policy step alone (everything
but the critic epochs).

    python benchmarks/update_cost.py --env HalfCheetah-v5 --repetitions 30
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

import torch as th
from sb3_contrib import TRPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import TRPOCritic

HYPERPARAMETERS: dict[str, Any] = dict(
    n_steps=1024,
    batch_size=128,
    gamma=0.99,
    gae_lambda=0.95,
    cg_max_steps=25,
    cg_damping=0.1,
    n_critic_updates=20,
    learning_rate=1e-3,
    target_kl=0.01,
)


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


def build(algo: type, env_id: str, seed: int):
    env = VecNormalize(make_vec_env(env_id, n_envs=2, seed=seed))
    return algo("MlpPolicy", env, seed=seed, device="cpu", **HYPERPARAMETERS)


def collect(model) -> None:
    _, callback = model._setup_learn(model.n_steps * model.n_envs, callback=None, reset_num_timesteps=False)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def time_train(model) -> tuple[float, float]:
    """Seconds of the whole train() and of its policy step (all but the critic epochs)."""
    collect(model)
    if isinstance(model, TRPOCritic):
        start = time.perf_counter()
        model.train()
        total = time.perf_counter() - start
        return total, total - model.logger.name_to_value["train/critic_time"]
    clock = CriticClock(model.rollout_buffer)
    start = time.perf_counter()
    model.train()
    end = time.perf_counter()
    model.rollout_buffer.get = clock.original_get
    assert clock.critic_start is not None
    return end - start, clock.critic_start - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    models = {"TRPOCritic": build(TRPOCritic, args.env, args.seed), "sb3_contrib.TRPO": build(TRPO, args.env, args.seed)}
    times: dict[str, dict[str, list[float]]] = {name: {"train": [], "policy": []} for name in models}
    for repetition in range(args.warmup + args.repetitions):
        for name, model in models.items():
            total, policy = time_train(model)
            if repetition >= args.warmup:
                times[name]["train"].append(total)
                times[name]["policy"].append(policy)

    print(
        f"env={args.env} repetitions={args.repetitions} threads={args.threads} torch={th.__version__} "
        f"python={platform.python_version()} cpu={platform.processor() or platform.machine()}"
    )
    print(f"{'':18s} {'train() median':>15s} {'policy step median':>19s} {'critic epochs median':>21s}")
    medians = {}
    for name, measured in times.items():
        train, policy = statistics.median(measured["train"]), statistics.median(measured["policy"])
        critic = statistics.median(t - p for t, p in zip(measured["train"], measured["policy"], strict=True))
        medians[name] = (train, policy)
        print(f"{name:18s} {train * 1e3:12.1f} ms {policy * 1e3:16.1f} ms {critic * 1e3:18.1f} ms")
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
    cg = models["TRPOCritic"].logger.name_to_value.get("train/cg_iterations")
    print(f"TRPOCritic CG iterations in the last update: {cg}")


if __name__ == "__main__":
    main()
