"""Experiment (issue 11): how fast can a rollout be on this machine? The VecEnv stack alone against SB3's
collect_rollouts, and SB3's DummyVecEnv (all envs in this process) against SubprocVecEnv (one process per env).

For an env and a number of envs it times, in alternation, ``--rounds`` times: random actions through
DummyVecEnv + VecNormalize, the same through SubprocVecEnv + VecNormalize, and TRPOCritic's collect_rollouts
(SB3's loop with the 64x64 MlpPolicy, on DummyVecEnv) of 2048 samples, and prints env-steps per second.
``--stacks`` chooses among these (``dummy``, ``subproc``, ``collect``) and ``envpool``: random actions through
EnvPool's environments (sb3_trpo_critic.envpool, the ``envpool`` extra) + VecNormalize (issue 24).

    python benchmarks/experiments/vec_env_speed.py --env Walker2d-v5 --n-envs 8
    python benchmarks/experiments/vec_env_speed.py --env HalfCheetah-v5 --n-envs 8 --stacks dummy envpool
    python benchmarks/experiments/vec_env_speed.py --env Walker2d-v5 --n-envs 8 --profile

``--profile``: instead, where the VecEnv stack's time goes (cProfile of 4096 random-action env steps, by own time).
"""

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.timing import random_action_seconds
from sb3_trpo_critic.benchmarks.update_cost import collect

SAMPLES = 2048
#: What ``--stacks`` times, by name.
LABELS = {
    "dummy": "DummyVecEnv, random actions",
    "subproc": "SubprocVecEnv, random actions",
    "envpool": "EnvPool, random actions",
    "collect": "collect_rollouts (DummyVecEnv)",
}


def random_steps_per_second(venv: VecEnv) -> float:
    """Env-steps/s of ``2 * SAMPLES`` env steps with random actions (the throughput benchmark's env stack row)."""
    steps, seconds = random_action_seconds(venv, 2 * SAMPLES)
    return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Walker2d-v5")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--stacks", nargs="+", choices=list(LABELS), default=["dummy", "subproc", "collect"])
    args = parser.parse_args()
    th.set_num_threads(1)

    def stack(name: str) -> VecNormalize:
        if name == "envpool":
            from sb3_trpo_critic.envpool import make_envpool_vec_env

            return VecNormalize(make_envpool_vec_env(args.env, args.n_envs, seed=0))
        vec_env_cls: type[VecEnv] = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}[name]
        return VecNormalize(make_vec_env(args.env, n_envs=args.n_envs, seed=0, vec_env_cls=vec_env_cls))

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(random_steps_per_second, stack("dummy"))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(8)
        return

    stacks = {name: stack(name) for name in args.stacks if name != "collect"}
    model = (
        TRPOCritic("MlpPolicy", stack("dummy"), n_steps=SAMPLES // args.n_envs, seed=0) if "collect" in args.stacks else None
    )
    measured: dict[str, list[float]] = {LABELS[name]: [] for name in args.stacks}
    for _ in range(args.rounds):  # in alternation
        for name, venv in stacks.items():
            measured[LABELS[name]].append(random_steps_per_second(venv))
        if model is not None:
            start = time.perf_counter()
            collect(model)
            measured[LABELS["collect"]].append(SAMPLES / (time.perf_counter() - start))
    for venv in stacks.values():
        venv.close()
    print(f"env={args.env} n_envs={args.n_envs} rounds={args.rounds} (env-steps/s; median and each round)")
    for name, values in measured.items():
        print(f"{name:32s} {np.median(values):7.0f}  {[round(v) for v in values]}")


if __name__ == "__main__":
    main()
