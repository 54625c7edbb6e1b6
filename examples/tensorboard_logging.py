"""Log TRPOCritic's training metrics to TensorBoard and CSV, then read them back.

python examples/tensorboard_logging.py --env Pendulum-v1 --timesteps 50000 --log-dir runs/tensorboard_example
tensorboard --logdir runs/tensorboard_example

The summary printed at the end is the first thing to look at in a run: how many policy steps
were accepted, how much of the trust region the accepted steps used, and whether the critic
explains the returns. What each metric means: docs/metrics.md.
"""

import argparse
import csv
import math
from pathlib import Path

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from sb3_trpo_critic import TRPOCritic


def summarize(progress_csv: Path) -> dict[str, float]:
    """
    Summary of the ``train/`` rows of SB3's ``progress.csv``.

    :param progress_csv: The file written by SB3's ``csv`` output
    :return: Updates, the fraction of accepted policy steps, their mean KL over the update's trust region
        radius (``train/target_kl``, which also follows a ``target_kl`` schedule), CG iterations, and the
        last explained variance
    """
    with open(progress_csv, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("train/n_updates")]
    accepted = [row for row in rows if row["train/step_outcome"] == "accepted"]
    kl_over_target = [float(row["train/kl_divergence"]) / float(row["train/target_kl"]) for row in accepted]
    return {
        "updates": len(rows),
        "accepted_fraction": len(accepted) / len(rows) if rows else math.nan,
        "mean_kl_over_target": sum(kl_over_target) / len(kl_over_target) if kl_over_target else math.nan,
        "mean_cg_iterations": sum(float(row["train/cg_iterations"]) for row in rows) / len(rows) if rows else math.nan,
        "last_explained_variance": float(rows[-1]["train/explained_variance"]) if rows else math.nan,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", type=Path, default=Path("runs/tensorboard_example"))
    args = parser.parse_args(argv)

    env = make_vec_env(args.env, n_envs=2, seed=args.seed)
    model = TRPOCritic("MlpPolicy", env, n_steps=1024, gamma=0.9, n_critic_updates=15, seed=args.seed)
    # The simplest way is TRPOCritic(..., tensorboard_log="runs/") (TensorBoard only, one subfolder
    # per run). A logger of your own writes the same metrics to several outputs at once:
    model.set_logger(configure(str(args.log_dir), ["stdout", "csv", "tensorboard"]))
    model.learn(total_timesteps=args.timesteps)

    summary = summarize(args.log_dir / "progress.csv")
    print(
        f"{summary['updates']:.0f} updates, {summary['accepted_fraction']:.0%} of the policy steps accepted, "
        f"mean KL of accepted steps {summary['mean_kl_over_target']:.2f} x target_kl, "
        f"{summary['mean_cg_iterations']:.1f} CG iterations, "
        f"last explained variance {summary['last_explained_variance']:.2f}"
    )
    print(f"event files: {sorted(p.name for p in args.log_dir.glob('events.out.tfevents.*'))}")
    print(f"view them with: tensorboard --logdir {args.log_dir}")
    return summary


if __name__ == "__main__":
    main()
