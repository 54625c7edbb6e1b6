"""Experiment (issue 11): how fast can a rollout be on this machine? The VecEnv stack alone against SB3's
collect_rollouts, and SB3's DummyVecEnv (all envs in this process) against SubprocVecEnv (one process per env).

For an env and a number of envs it times, in alternation, ``--rounds`` times: random actions through
DummyVecEnv + VecNormalize, the same through SubprocVecEnv + VecNormalize, and TRPOCritic's collect_rollouts
(SB3's loop with the 64x64 MlpPolicy, on DummyVecEnv) of 2048 samples, and prints env-steps per second.
``--stacks`` chooses among these (``dummy``, ``subproc``, ``collect``) and ``envpool``: random actions through
EnvPool's environments (sb3_trpo_critic.envpool, the ``envpool`` extra) + VecNormalize (issue 24); and
``dummy-shallow-infos``: ``dummy`` with the infos returned without SB3's deep copy (a shallow copy of the list;
for timing what that copy costs only, as SB3's contract is the deep copy).

    python benchmarks/experiments/vec_env_speed.py --env Walker2d-v5 --n-envs 8
    python benchmarks/experiments/vec_env_speed.py --env HalfCheetah-v5 --n-envs 8 --stacks dummy envpool
    python benchmarks/experiments/vec_env_speed.py --env Walker2d-v5 --n-envs 8 --profile
    python benchmarks/experiments/vec_env_speed.py --env Hopper-v5 --stacks dummy dummy-shallow-infos --rounds 5

``--profile``: instead, where the VecEnv stack's time goes (cProfile of 4096 random-action env steps, by own time).
cProfile's cost per Python call inflates functions made of many small calls, such as ``deepcopy``: time those
as a stack of their own (``dummy-shallow-infos`` against ``dummy``).
"""

import argparse
import contextlib
import cProfile
import pstats
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize, dummy_vec_env

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.timing import random_action_seconds
from sb3_trpo_critic.benchmarks.update_cost import collect

SAMPLES = 2048
#: What ``--stacks`` times, by name.
LABELS = {
    "dummy": "DummyVecEnv, random actions",
    "subproc": "SubprocVecEnv, random actions",
    "envpool": "EnvPool, random actions",
    "dummy-shallow-infos": "DummyVecEnv, infos not deep-copied",
    "collect": "collect_rollouts (DummyVecEnv)",
}


@contextlib.contextmanager
def infos_not_deep_copied() -> Iterator[None]:
    """
    For the block, DummyVecEnv's ``step_wait`` returns a shallow copy of its list of infos instead of a deep copy
    (``dummy_vec_env.deepcopy`` of anything else, the observation buffers, is unchanged). Restored afterwards.
    """
    deepcopy = dummy_vec_env.deepcopy

    def copy_infos_shallow(value: Any) -> Any:
        return list(value) if isinstance(value, list) else deepcopy(value)

    dummy_vec_env.deepcopy = copy_infos_shallow  # type: ignore[assignment]
    try:
        yield
    finally:
        dummy_vec_env.deepcopy = deepcopy


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
        vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] = SubprocVecEnv if name == "subproc" else DummyVecEnv
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
            with infos_not_deep_copied() if name == "dummy-shallow-infos" else contextlib.nullcontext():
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
