"""Experiment (issue 22): how fast does each algorithm shrink its Gaussian policy's standard deviation?

On Ant-v5 a policy with the constructor defaults' standard deviation of 1 pays more control cost (0.5 x the
squared action, summed over 8 joints: about 2 per step) than its healthy reward (1 per step), so every algorithm
first learns to end its episodes early, and climbs back only once its standard deviation is small enough.
This trains TRPOCritic, ``sb3_contrib.TRPO`` and PPO with their constructor defaults (one env, no VecNormalize,
as ``compare run --defaults``; one torch thread) and records, at the end of each rollout, the mean standard
deviation of the policy that collected it and the mean return and length of the last 100 training episodes
(stochastic actions); for TRPOCritic also the previous update's accepted KL and line-search candidates (how
close the steps come to the trust region's radius ``train/target_kl``, and whether the line search had to
shrink them). Writes one
JSON file per (algorithm, seed) to ``--out``.

    python benchmarks/experiments/std_trajectory.py --algos trpo_critic trpo ppo --seeds 0 1 \
        --out benchmarks/results/defaults_tuning/std_trajectory
    python benchmarks/experiments/std_trajectory.py --algos trpo_critic --seeds 0 1 --hyperparams cg_damping:0.8 \
        --out benchmarks/results/defaults_tuning/std_trajectory

``--hyperparams KEY:VALUE ...`` sets constructor arguments (as the comparison runner's ``--defaults --hyperparams``);
the file's name and its ``hyperparams`` record them.
"""

import argparse
import json
import pathlib

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_trpo_critic.benchmarks.results import RunSpec
from sb3_trpo_critic.benchmarks.run import build_training, hyperparam_argument


class StdRecorder(BaseCallback):
    """
    At each rollout's end: the env steps so far, the policy's mean standard deviation, the last 100 training
    episodes' mean return and length, and TRPOCritic's previous policy step's KL and line-search candidates
    (``null`` for other algorithms and before the first update).
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, float, float, float, float | None, int | None]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        policy = self.model.policy
        assert isinstance(policy, ActorCriticPolicy) and isinstance(policy.log_std, th.Tensor), "a Gaussian policy"
        std = float(policy.log_std.detach().exp().mean())
        episodes = self.model.ep_info_buffer
        mean_return = float(np.mean([e["r"] for e in episodes])) if episodes else float("nan")
        mean_length = float(np.mean([e["l"] for e in episodes])) if episodes else float("nan")
        step = getattr(self.model, "last_policy_step", None)
        kl, candidates = (step.kl, step.line_search_steps) if step is not None else (None, None)
        self.rows.append((self.num_timesteps, std, mean_return, mean_length, kl, candidates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Ant-v5")
    parser.add_argument("--algos", nargs="+", default=["trpo_critic", "trpo", "ppo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--hyperparams", nargs="*", type=hyperparam_argument, default=[], metavar="KEY:VALUE")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for algo in args.algos:
            hyperparams = tuple(args.hyperparams)
            training = build_training(RunSpec(algo, args.env, seed, threads=1, hyperparams=hyperparams, defaults=True))
            recorder = StdRecorder()
            training.model.learn(args.timesteps, callback=recorder)
            variant = "".join(f"__{key}-{value}" for key, value in args.hyperparams)
            path = args.out / f"{algo}__{args.env}__seed{seed}{variant}.json"
            columns = ("timesteps", "std", "train_return", "train_length", "kl", "line_search_steps")
            record = {
                "algo": algo,
                "env_id": args.env,
                "seed": seed,
                "timesteps": args.timesteps,
                "hyperparams": dict(args.hyperparams),
                "columns": columns,
            }
            rows = ",\n  ".join(json.dumps(row) for row in recorder.rows)
            path.write_text(json.dumps(record)[:-1] + f', "rows": [\n  {rows}\n]}}\n')
            print(f"{path}: std {recorder.rows[0][1]:.3f} -> {recorder.rows[-1][1]:.3f}")


if __name__ == "__main__":
    main()
