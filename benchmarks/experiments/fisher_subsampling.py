"""Measurement (issue 11): the cost of TRPOCritic's policy step on HalfCheetah-v5 against ``sub_sampling_factor``.

Builds TRPOCritic with the shipped HalfCheetah-v5 entry's settings (8 envs x 256 steps, 256x256 ReLU networks,
log_std_init -1, cg_max_steps 25, cg_damping 0.1, target_kl 0.24, 5 critic epochs), trains 20,480 steps, then
times, on the rollout in the buffer and from the same parameters, the policy step (gradient, CG, step size, line
search) at sub_sampling_factor 1, 2 and 4, interleaved, and the critic's epochs; one torch thread; medians.

    python benchmarks/experiments/fisher_subsampling.py [--repetitions 5]
"""

import copy
import statistics
import time

import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from timing_cli import parse_timing_args  # the script beside this one (its directory is on sys.path when run)

from sb3_trpo_critic import TRPOCritic


def main() -> None:
    repetitions = parse_timing_args(__doc__, default_repetitions=5)
    env = VecNormalize(make_vec_env("HalfCheetah-v5", n_envs=8, seed=0))
    model = TRPOCritic(
        "MlpPolicy", env, n_steps=256, batch_size=128, n_critic_updates=5, cg_max_steps=25, cg_damping=0.1,
        target_kl=0.24, learning_rate=1e-3, seed=0,
        policy_kwargs=dict(log_std_init=-1, ortho_init=False, activation_fn=th.nn.ReLU,
                           net_arch=dict(pi=[256, 256], vf=[256, 256])),
    )  # fmt: skip
    model.learn(20480)
    state = copy.deepcopy(model.policy.state_dict())
    rollout = next(model.rollout_buffer.get(batch_size=None))
    seconds: dict[str, list[float]] = {}
    cg_iterations: dict[str, list[int]] = {}
    for _ in range(repetitions):
        for factor in (1, 2, 4):
            name = f"policy step, sub_sampling_factor {factor}"
            model.sub_sampling_factor = factor
            model.policy.load_state_dict(state)
            start = time.perf_counter()
            step = model._policy_step(rollout)
            seconds.setdefault(name, []).append(time.perf_counter() - start)
            cg_iterations.setdefault(name, []).append(step.cg_iterations)
        model.policy.load_state_dict(state)
        start = time.perf_counter()
        model._fit_critic(rollout)
        seconds.setdefault("critic epochs", []).append(time.perf_counter() - start)
    for name, values in seconds.items():
        iterations = f", CG iterations {statistics.median(cg_iterations[name]):.0f}" if name in cg_iterations else ""
        print(f"{name}: median {statistics.median(values):.3f} s over {repetitions}{iterations}")


if __name__ == "__main__":
    main()
