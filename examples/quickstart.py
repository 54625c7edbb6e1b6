"""Train TRPOCritic on an environment, save it, load it back and evaluate it.

python examples/quickstart.py --env Pendulum-v1 --timesteps 100000
"""

import argparse
import tempfile
from pathlib import Path

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_trpo_critic import TRPOCritic


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args(argv)

    # rl-zoo3's tuned TRPO settings for Pendulum-v1 (a 1-D action: the KL is the same in both conventions)
    env = make_vec_env(args.env, n_envs=2, seed=args.seed)
    model = TRPOCritic(
        "MlpPolicy",
        env,
        n_steps=1024,
        gamma=0.9,
        n_critic_updates=15,
        use_sde=True,
        sde_sample_freq=4,
        seed=args.seed,
        verbose=1,
    )
    model.learn(total_timesteps=args.timesteps, progress_bar=True)

    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "trpo_critic")
        model = TRPOCritic.load(Path(folder) / "trpo_critic")

    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    assert isinstance(mean_return, float)  # (a list only with return_episode_rewards=True)
    print(f"{args.env}: mean return {mean_return:.1f} +- {std_return:.1f} over {args.eval_episodes} episodes")
    return mean_return


if __name__ == "__main__":
    main()
